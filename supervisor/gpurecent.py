"""The GPUs' recent work (state.json's `gpu_recent`): each heartbeat's GPU reading of the last
RECENT_S taken while the trainer printed as often as it does, and each GPU's medians over them.

One reading is an instant: NVML's utilisation is the share of its last sample period (1/6 s to
1 s) a kernel ran, so a GPU that waits for data reads 100 % when the read lands on a batch and
0 % between, and power swings with the step. The watcher checks every few minutes and sees one
such instant; the supervisor reads every heartbeat, and the median of the last minutes' readings
is the GPU's work. A reading taken in a silence longer than the trainer's print gap (an eval, a
checkpoint save, a load) is not training's and is left out: the gap is learned from the
trainer's own prints (twice their median spacing, at least FRESH_MIN_S). A silence's first
readings, kept while it could still be a print running late, go once it outlasts the gap: a
check just after a 4-min save otherwise read the save's first minute (4 idle readings) against
the minute of training since, a median of half an idle GPU, and the watcher learned the GPU's
work at the run's rate from it (2026-12-01, eighth session).

Kept per attempt: a new trainer starts afresh; at most MAX_BEATS readings. Standard library
only (Python 3.9+).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from statistics import median
from typing import Any, Deque, Dict, List, Optional, Tuple

RECENT_S = 300.0
FRESH_MIN_S = 60.0
PRINTS_KEPT = 9  # the trainer's newest print times: 8 gaps
# at most this many beats (20 at the default 15 s heartbeat): a heartbeat of a second or less
# would have the medians of thousands of readings of every GPU recomputed at each beat
MAX_BEATS = 64

Beat = Tuple[dt.datetime, List[Dict[str, Any]]]


class RecentGpus:
    def __init__(self) -> None:
        self._beats: Deque[Beat] = deque(maxlen=MAX_BEATS)
        self._prints: Deque[dt.datetime] = deque(maxlen=PRINTS_KEPT)
        self._attempt: Optional[int] = None

    def fresh_s(self) -> float:
        """How long after a print a reading is still the trainer's: twice the median gap
        between its newest prints, at least FRESH_MIN_S."""
        times = list(self._prints)
        gaps = [(times[i + 1] - times[i]).total_seconds() for i in range(len(times) - 1)]
        return max(FRESH_MIN_S, 2 * median(gaps)) if gaps else FRESH_MIN_S

    def note(
        self,
        at: dt.datetime,
        gpus: List[Dict[str, Any]],
        last_output_at: Optional[dt.datetime],
        attempt: int,
    ) -> None:
        """The heartbeat at `at` read `gpus` (supervisor.gpu readings); the trainer of
        `attempt` last printed at `last_output_at`."""
        if attempt != self._attempt:
            self._beats.clear()
            self._prints.clear()
            self._attempt = attempt
        if last_output_at is None:
            return
        if not self._prints or last_output_at > self._prints[-1]:
            self._prints.append(last_output_at)
        if (at - last_output_at).total_seconds() <= self.fresh_s():
            self._beats.append((at, [g for g in gpus if isinstance(g, dict)]))
        else:  # the silence outlasted the gap: its first readings were its own too
            while self._beats and self._beats[-1][0] > last_output_at:
                self._beats.pop()
        while self._beats and (at - self._beats[0][0]).total_seconds() >= RECENT_S:
            self._beats.popleft()

    def summary(self) -> Optional[Dict[str, Any]]:
        """{readings, span_s, gpus: [{index, util_pct, power_w, power_limit_w}]}: each GPU's
        medians over the kept readings; None: none kept."""
        if not self._beats:
            return None
        first, last = self._beats[0][0], self._beats[-1][0]
        by_index: Dict[int, List[Dict[str, Any]]] = {}
        for _, gpus in self._beats:
            for g in gpus:
                if isinstance(g.get("index"), int):
                    by_index.setdefault(g["index"], []).append(g)
        return {
            "readings": len(self._beats),
            "span_s": round((last - first).total_seconds(), 1),
            "gpus": [_medians(index, by_index[index]) for index in sorted(by_index)],
        }


def _medians(index: int, readings: List[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"index": index}
    for key in ("util_pct", "power_w"):
        values = [r[key] for r in readings if isinstance(r.get(key), (int, float))]
        out[key] = round(median(values), 1) if values else None
    limits = [
        r["power_limit_w"] for r in readings if isinstance(r.get("power_limit_w"), (int, float))
    ]
    out["power_limit_w"] = limits[-1] if limits else None
    return out
