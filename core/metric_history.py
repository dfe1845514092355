"""The run's metric history as the watcher reads it: a typed, bounded model of what
`supervisor probe --metrics` answers (supervisor/metrics.py writes it on the instance), and a
text sparkline of a series.

Read by core/protocol.py (the probe's optional `metrics` field); drawn by core/chart.py (PNG) and
by the console notifier (sparkline). Pure: no I/O.

The instance is untrusted: every series is capped, every number finite, a bad point is dropped
rather than failing the whole probe.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_POINTS = 1000
SERIES = ("loss", "eval", "lr", "throughput")
SPARK = "▁▂▃▄▅▆▇█"

Point = tuple[float, float]


class MetricHistory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    loss: tuple[Point, ...] = ()
    eval: tuple[Point, ...] = ()
    lr: tuple[Point, ...] = ()
    throughput: tuple[Point, ...] = ()
    eval_key: Annotated[str, StringConstraints(max_length=40)] | None = None
    attempts: tuple[tuple[int, float], ...] = Field(default=(), max_length=100)

    @field_validator("loss", "eval", "lr", "throughput", mode="before")
    @classmethod
    def _series(cls, raw: Any) -> tuple[Point, ...]:
        points = raw.get("points") if isinstance(raw, dict) else None
        if not isinstance(points, list):
            return ()
        return tuple(p for p in map(_point, points[-MAX_POINTS:]) if p is not None)

    @field_validator("eval_key", mode="before")
    @classmethod
    def _key(cls, raw: Any) -> str | None:
        if not isinstance(raw, str):
            return None
        return "".join(ch for ch in raw[:40] if ch.isalnum() or ch in "_/.-") or None

    @field_validator("attempts", mode="before")
    @classmethod
    def _attempts(cls, raw: Any) -> tuple[tuple[int, float], ...]:
        if not isinstance(raw, list):
            return ()
        marks = (_point(m) for m in raw[-100:])
        return tuple((int(m[0]), m[1]) for m in marks if m is not None and 1 <= m[0] < 10_000)

    def has_points(self) -> bool:
        return any(self.series(name) for name in SERIES)

    def series(self, name: str) -> tuple[Point, ...]:
        value: tuple[Point, ...] = getattr(self, name)
        return value


def history_from_doc(raw: Any) -> MetricHistory | None:
    """The probe's `metrics` value, or None when absent or not an object."""
    if not isinstance(raw, dict):
        return None
    return MetricHistory.model_validate(raw)


def sparkline(values: list[float] | tuple[float, ...], width: int = 24) -> str:
    """`▁▂▅▇` for the values, resampled to at most `width` characters; '' for none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    if len(finite) > width:
        step = len(finite) / width
        finite = [finite[min(len(finite) - 1, int(i * step))] for i in range(width - 1)]
        finite.append(values[-1] if math.isfinite(values[-1]) else finite[-1])
    # halves: the span of two finite floats can overflow (-1.7e308 .. 1.7e308)
    low, high = min(finite) / 2, max(finite) / 2
    if high - low < 1e-12:
        return SPARK[3] * len(finite)
    scale = (len(SPARK) - 1) / (high - low)
    return "".join(SPARK[round((v / 2 - low) * scale)] for v in finite)


def _point(raw: Any) -> Point | None:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        return None
    try:
        x, y = float(raw[0]), float(raw[1])
    except OverflowError:  # an int past float's range
        return None
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None
