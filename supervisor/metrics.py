"""A bounded history of the run's metrics (training loss, eval metric, learning rate, throughput)
against the step, parsed from the trainer's log, for the watcher's chart.

Fed by supervisor.attempt with each new chunk of the attempt's log (the same bytes progress
reads); kept in `<run_dir>/metrics.json` so it spans attempts and supervisor restarts; read by
`supervisor probe --metrics` (supervisor.probe) when the watcher draws a chart (core/chart.py).

Each series holds at most `limit` points: when full, every other point is dropped and the series
then keeps one new point in `stride`, so a week-long run and a ten-minute one both fit a few
hundred points. The newest point is always kept, so the chart ends where the run is.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Pattern, Tuple

from .fsutil import read_json, write_json_atomic
from .progress import match_step

METRICS_FILE = "metric_history.json"
METRICS_VERSION = 1
POINTS_PER_SERIES = 300
SAVE_EVERY_S = 30.0
SERIES = ("loss", "eval", "lr", "throughput")

# `{'loss': '1.23', 'learning_rate': '5e-05', ...}`: the HF Trainer's log dict (recent versions
# quote the numbers); `- loss: 0.2365 - val_loss: 0.3` (Keras); `loss=1.94`, `train_loss=1.9`,
# `val_loss=2.1` (plain loops, Lightning's bar postfix, accelerate scripts).
_PAIR = re.compile(
    rb"""(?:^|[\s{,|\-\[(])['"]?(?P<key>[A-Za-z_][\w/.]{0,40}?)['"]?\s*[:=]\s*"""
    rb"""['"]?(?P<value>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf))\b"""
)
_LOSS_KEYS = {b"loss", b"train_loss", b"train/loss", b"training_loss", b"train_loss_step"}
_LR_KEYS = {b"learning_rate", b"lr", b"train/learning_rate"}
_EVAL_PREFIXES = (b"eval_", b"val_", b"eval/", b"val/", b"validation_")
# Summary keys the HF Trainer prints once at the end: not a point on any curve.
_SUMMARY = b"train_runtime"  # the HF Trainer's end-of-run averages
_SKIP = re.compile(rb"(?i)(?:runtime|per_second|samples|steps_per|flos|epoch|grad_norm|step$)")
_LINE_SPLIT = re.compile(rb"[\r\n]")
# A line without one of these names no metric (a cheap test before the pair search); eval lines
# are rare and each one matters: never thinned out.
_MAYBE = re.compile(rb"(?i)loss|lr|learning_rate|val")
_EVALISH = re.compile(rb"(?i)(?:eval|val)[_/]|validation_")
# A flood (1,000 lines a second) gives hundreds of loss lines per read; a chart of 300 points
# needs a few of them, evenly spaced, and the newest: reading every one cost the supervisor
# ~2 % of a core on its own.
LINES_PER_FEED = 16


def pairs_in(line: bytes) -> Iterator[Tuple[str, str, float]]:
    """(series, key, value) for each metric a log line names, finite values only."""
    if _SUMMARY in line:
        return
    for found in _PAIR.finditer(line):
        key = found.group("key").lower()
        series = _series_of(key)
        if series is None:
            continue
        value = float(found.group("value"))
        if math.isfinite(value):
            yield series, key.decode("ascii", "replace"), value


def _series_of(key: bytes) -> Optional[str]:
    if key in _LOSS_KEYS:
        return "loss"
    if key in _LR_KEYS:
        return "lr"
    if key.startswith(_EVAL_PREFIXES) and not _SKIP.search(key):
        return "eval"
    return None


class Series:
    """At most `limit` (x, y) points; halves itself when full (see the module doc)."""

    def __init__(self, limit: int = POINTS_PER_SERIES) -> None:
        self.limit = max(4, limit)
        self.points: List[Tuple[float, float]] = []
        self.stride = 1
        self._since_kept = 0

    def add(self, x: float, y: float) -> None:
        if self.points and self._since_kept % self.stride != 0:
            self.points[-1] = (x, y)  # the newest value stands in until the next kept slot
        else:
            self.points.append((x, y))
        self._since_kept += 1
        if len(self.points) > self.limit:
            newest = self.points[-1]
            self.points = self.points[::2]
            if self.points[-1] != newest:
                self.points.append(newest)
            self.stride *= 2
            self._since_kept = 1

    def to_json(self) -> Dict[str, Any]:
        return {"stride": self.stride, "points": [[_num(x), _num(y)] for x, y in self.points]}

    @classmethod
    def from_json(cls, doc: Any, limit: int = POINTS_PER_SERIES) -> "Series":
        series = cls(limit)
        if isinstance(doc, dict):
            stride = doc.get("stride")
            series.stride = stride if isinstance(stride, int) and 1 <= stride <= 1 << 30 else 1
            for point in doc.get("points") or []:
                if _is_point(point):
                    series.points.append((float(point[0]), float(point[1])))
            series.points = series.points[-series.limit :]
        return series


class MetricHistory:
    """The run's series plus where each attempt began (`attempts`: [attempt, step])."""

    def __init__(self, run_dir: str, limit: int = POINTS_PER_SERIES) -> None:
        self.path = os.path.join(run_dir, METRICS_FILE)
        self.series: Dict[str, Series] = {name: Series(limit) for name in SERIES}
        self.attempts: List[Tuple[int, float]] = []
        self.eval_key: Optional[str] = None  # the first eval metric seen is the one drawn
        self._tail = b""
        self._saved_at: Optional[float] = None
        self._dirty = False

    @classmethod
    def load(cls, run_dir: str, limit: int = POINTS_PER_SERIES) -> "MetricHistory":
        history = cls(run_dir, limit)
        try:
            doc = read_json(history.path)
        except (OSError, ValueError):
            return history  # none yet, or unreadable: start a fresh history
        if isinstance(doc, dict) and doc.get("metrics") == METRICS_VERSION:
            for name in SERIES:
                history.series[name] = Series.from_json(doc.get(name), limit)
            key = doc.get("eval_key")
            history.eval_key = key[:40] if isinstance(key, str) else None
            for mark in doc.get("attempts") or []:
                if _is_point(mark):
                    history.attempts.append((int(mark[0]), float(mark[1])))
        return history

    def attempt_started(self, attempt: int, step: Optional[int]) -> None:
        self.attempts = [m for m in self.attempts if m[0] != attempt][-50:]
        self.attempts.append((attempt, float(step or 0)))
        self._dirty = True

    def feed(
        self, chunk: bytes, step: Optional[int], user: Optional[Pattern[bytes]] = None
    ) -> None:
        """Metrics in the whole lines of `chunk`. A metric is placed at the step its own line
        names, else at the last step named before it, else at `step` (progress's step before
        this chunk)."""
        data = self._tail + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        self._tail = data[cut + 1 :][-4096:] if cut >= 0 else data[-4096:]
        text = data[: cut + 1][-(256 << 10) :]
        lines = _LINE_SPLIT.split(text)
        x, known = float(step or 0), 0  # x: the last step named in lines[:known]
        for index in _picked(text, lines):
            x = _step_at(lines, known, index, x, user)
            known = index + 1
            for name, key, value in pairs_in(lines[index]):
                if name == "eval":
                    if self.eval_key is None:
                        self.eval_key = key
                    elif key != self.eval_key:
                        continue
                self.series[name].add(x, value)
                self._dirty = True

    def throughput(self, step: Optional[int], value: Optional[float]) -> None:
        if value is not None and math.isfinite(value):
            self.series["throughput"].add(float(step or 0), value)
            self._dirty = True

    def save_if_due(self, now: float) -> None:
        if self._saved_at is None or now - self._saved_at >= SAVE_EVERY_S:
            self.save(now)

    def save(self, now: float) -> None:
        if not self._dirty:
            return
        doc: Dict[str, Any] = {"metrics": METRICS_VERSION}
        doc.update({name: self.series[name].to_json() for name in SERIES})
        doc["eval_key"] = self.eval_key
        doc["attempts"] = [[a, _num(s)] for a, s in self.attempts]
        self._saved_at = now
        try:
            write_json_atomic(self.path, doc)
        except OSError:
            return  # a full disk: the chart is a nicety, the run is not; try again later
        self._dirty = False


def read_metrics(run_dir: str) -> Optional[Dict[str, Any]]:
    """The stored history as written, for `probe --metrics`; None when there is none."""
    try:
        doc = read_json(os.path.join(run_dir, METRICS_FILE))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _picked(text: bytes, lines: List[bytes]) -> List[int]:
    """The lines of `text` worth a pair search: all that may name a metric, or, in a flood,
    every eval line and the first that may in each of LINES_PER_FEED even slots, and the
    newest."""
    if len(lines) <= LINES_PER_FEED:
        return [i for i, line in enumerate(lines) if line and _MAYBE.search(line)]
    slots = [k * len(lines) // LINES_PER_FEED for k in range(LINES_PER_FEED + 1)]
    picked = {_first_maybe(lines, slots[k], slots[k + 1]) for k in range(LINES_PER_FEED)}
    picked.add(_first_maybe(lines, len(lines) - 1, -1, -1))
    if _EVALISH.search(text):
        picked.update(i for i, line in enumerate(lines) if _EVALISH.search(line))
    picked.discard(-1)
    return sorted(picked)


def _first_maybe(lines: List[bytes], start: int, stop: int, step: int = 1) -> int:
    for i in range(start, stop, step):
        if lines[i] and _MAYBE.search(lines[i]):
            return i
    return -1


def _step_at(
    lines: List[bytes], low: int, index: int, x: float, user: Optional[Pattern[bytes]]
) -> float:
    """The step named by lines[index], else by the nearest line before it down to `low`,
    else `x` (the step known before `low`)."""
    for i in range(index, low - 1, -1):
        hit = match_step(lines[i], user) if lines[i] else None
        if hit is not None:
            return float(hit[0])
    return x


def _is_point(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) for v in value)
    )


def _num(value: float) -> float:
    return int(value) if float(value).is_integer() and abs(value) < 1 << 53 else round(value, 6)
