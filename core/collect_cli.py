"""`sleepwatch collect RUN` (core/cli.py): collect a run's outputs now, with a plain-text progress
bar on stderr, through the same Collector the exit path uses (core/collect.py): a pull cut short
by Ctrl-C, a dropped connection or a kill continues from where it stopped the next time."""

from __future__ import annotations

import sys
from typing import TextIO

from core.collect import Collector
from core.collect_report import Progress
from core.outputs import Collected
from core.store import Store

BAR_WIDTH = 30
EXIT_FAILED, EXIT_PENDING = 1, 3


def progress_bar(progress: Progress) -> str:
    total = progress.bytes_total
    frac = min(1.0, progress.bytes_done / total) if total else 1.0
    filled = int(frac * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"[{bar}] {progress.line().removeprefix('collecting ')} {progress.current}"


class BarPrinter:
    """Redraws one line on a terminal; elsewhere (a log, a pipe) prints one line per 10%."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.step = -1
        self.resumed: set[str] = set()

    def __call__(self, progress: Progress) -> None:
        if progress.resumed_from and progress.current not in self.resumed:
            self.resumed.add(progress.current)
            self.out.write(f"resuming {progress.current} at {progress.resumed_from} bytes\n")
        total = progress.bytes_total or 1
        step = int(10 * progress.bytes_done / total)
        if self.tty:
            self.out.write("\r" + progress_bar(progress))
        elif step != self.step:
            self.out.write(progress_bar(progress) + "\n")
        self.step = step
        self.out.flush()


async def collect_now(collector: Collector, store: Store, run: str) -> int:
    record = await store.get_run(run)
    if record is None:
        print(f"sleepwatch: no run named {run!r}", file=sys.stderr)
        return EXIT_FAILED
    printer = BarPrinter(sys.stderr)
    collector.on_progress, slice_s = printer, collector.slice_s
    collector.slice_s = None  # its own process: no lock to give back between slices
    try:
        result = await collector.collect(record, again=True)
    finally:
        collector.on_progress, collector.slice_s = None, slice_s
    if printer.tty:
        sys.stderr.write("\n")
    print(f"{run}: outputs: {result.line}")
    for reason in result.reasons:
        print(f"  {reason}")
    if result.state is Collected.PENDING:
        print(f"{run}: not finished; run `sleepwatch collect {run}` again to resume")
        return EXIT_PENDING
    return EXIT_FAILED if result.state is Collected.FAILED else 0
