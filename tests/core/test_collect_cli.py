"""The progress bar of `sleepwatch collect RUN`: plain text on stderr, one redrawn line on a
terminal, a line per tenth elsewhere, and a word when a pull resumes."""

from __future__ import annotations

import io

from core.collect_cli import BarPrinter, progress_bar
from core.collect_report import Progress

MB = 1_000_000


def test_the_bar_shows_files_bytes_and_the_file_being_pulled() -> None:
    bar = progress_bar(Progress("r", 0, 2, 21 * MB, 52 * MB, current="ckpt/final/model.bin"))
    assert bar == (
        "[############..................] 0/2 files, 21.0 MB/52.0 MB (40%) ckpt/final/model.bin"
    )


def test_off_a_terminal_it_prints_a_line_per_tenth_and_says_when_it_resumes() -> None:
    out = io.StringIO()
    printer = BarPrinter(out)
    for done in range(20 * MB, 101 * MB, 5 * MB):
        printer(Progress("r", 0, 1, done, 100 * MB, current="m.bin", resumed_from=20 * MB))
    lines = out.getvalue().splitlines()
    assert lines[0] == f"resuming m.bin at {20 * MB} bytes"
    assert [line.split("(")[1].split(")")[0] for line in lines[1:]] == [
        "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%", "100%",
    ]  # fmt: skip
