"""`python -m bench [--quick]`: detection, fleet, supervisor overhead and session latency, in turn.

Each bench prints its table and goals and writes bench/results/<name>.json (with --quick:
<name>.quick.json, so a smoke run never overwrites the real figures)."""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench.common import machine

BENCHES = ("detection", "fleet", "supervisor_overhead", "session_latency")


def _entry(name: str) -> Callable[..., dict[str, Any]] | None:
    try:
        module = importlib.import_module(f"bench.{name}")
    except ImportError as exc:
        print(f"\n== {name}: not available ({exc}) ==")
        return None
    main = getattr(module, "main", None)
    return main if callable(main) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", choices=BENCHES, action="append", help="run only this bench")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    started = time.perf_counter()
    summary: list[tuple[str, str]] = []
    for name in args.only or BENCHES:
        entry = _entry(name)
        if entry is None:
            summary.append((name, "skipped"))
            continue
        t0 = time.perf_counter()
        try:
            doc = entry(quick=args.quick)
        except Exception:
            traceback.print_exc()
            summary.append((name, "FAILED"))
            continue
        goals = doc.get("goals") or []
        missed = [g["goal"] for g in goals if isinstance(g, dict) and not g.get("met", True)]
        verdict = f"{len(goals) - len(missed)}/{len(goals)} goals met" if goals else "done"
        summary.append((name, f"{verdict} ({time.perf_counter() - t0:.0f} s)"))
    if not args.quick:
        from bench import report

        print("bench/README.md figures " + ("rewritten" if report.write() else "unchanged"))
    print(f"\n== summary ({time.perf_counter() - started:.0f} s) ==")
    for name, verdict in summary:
        print(f"  {name}: {verdict}")
    return 1 if any(v == "FAILED" for _, v in summary) else 0


if __name__ == "__main__":
    raise SystemExit(main())
