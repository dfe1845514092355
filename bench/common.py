"""What every bench shares: machine info, percentiles, goal lines, tables, the results JSON."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "implementation": sys.implementation.name,
    }


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def goal(name: str, met: bool, figure: str) -> dict[str, Any]:
    return {"goal": name, "met": met, "figure": figure}


def print_goals(goals: Sequence[dict[str, Any]]) -> None:
    for g in goals:
        print(f"  [{'MET ' if g['met'] else 'MISS'}] {g['goal']}: {g['figure']}")


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    head = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=False))
    return "\n".join([head, "-" * len(head), *lines])


def write_result(name: str, doc: dict[str, Any], *, quick: bool) -> Path:
    """bench/results/<name>.json (quick runs go to <name>.quick.json, never over the real one)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}{'.quick' if quick else ''}.json"
    full = {"bench": name, "quick": quick, "at": now_iso(), "machine": machine(), **doc}
    path.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    return path
