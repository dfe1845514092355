"""Early stop: the trainer's own (a marker in its log) and the supervisor's policy (pure).

Used by supervisor.attempt (the policy, fed metrics from the log as it grows) and
supervisor.verdict (the trainer's own early-stop marker at exit 0).
"""

from __future__ import annotations

import re
from typing import List, Optional

from .config import EarlyStop

# What trainers print when they stop early on purpose (Lightning, Keras, HF callbacks, plain).
TRAINER_MARKER = re.compile(
    r"(?i)early[ _-]?stop(?:ping|ped)?\b(?!_)|Signaling Trainer to stop|stopping early"
)


def trainer_stopped_early(tail: List[str]) -> bool:
    return any(TRAINER_MARKER.search(line) for line in tail[-15:])


class EarlyStopPolicy:
    """Stops when the metric has not improved by `min_delta` for `patience` evaluations, and
    never before `auto_stop_min_steps` (an unknown step counts as not reached)."""

    def __init__(self, spec: EarlyStop) -> None:
        self.spec = spec
        self.pattern = re.compile(spec.metric_regex.encode())
        self.best: Optional[float] = None
        self.stale = 0

    def observe(self, value: float) -> None:
        better = (
            self.best is None
            or (self.spec.mode == "min" and value < self.best - self.spec.min_delta)
            or (self.spec.mode == "max" and value > self.best + self.spec.min_delta)
        )
        if better:
            self.best, self.stale = value, 0
        else:
            self.stale += 1

    def should_stop(self, step: Optional[int]) -> bool:
        if step is None or step < self.spec.auto_stop_min_steps:
            return False
        return self.stale >= self.spec.patience
