"""When to check next. Pure: a phase machine over check outcomes, and the interval for a phase.

early risk (after launch and after each new attempt): 1m, 2m, 4m, 8m, then cruise every 30m;
alert mode every 3m until the run has been healthy for two checks in a row.

Called by core.rules (assess advances the phase with each check's outcome; next_check_s asks for
the interval); its policy is built from the config by core.config_sections.CadenceConfig.
`resume_delays` spreads the first checks after a start (core/service.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from core.models import RunRecord


class Phase(StrEnum):
    EARLY = "early"
    CRUISE = "cruise"
    ALERT = "alert"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True)
class CadencePolicy:
    early_s: tuple[float, ...] = (60.0, 120.0, 240.0, 480.0)
    cruise_s: float = 1800.0
    alert_s: float = 180.0
    healthy_checks_to_calm: int = 2
    scale: float = 1.0  # the demo and tests run the same policy faster
    min_interval_s: float = 1.0

    def scaled(self, seconds: float) -> float:
        return max(self.min_interval_s * self.scale, seconds * self.scale)


@dataclass(frozen=True, slots=True)
class Cadence:
    phase: Phase = Phase.EARLY
    early_index: int = 0
    healthy_streak: int = 0


def advance(
    cadence: Cadence,
    policy: CadencePolicy,
    *,
    alerting: bool,
    terminal: bool,
    new_attempt: bool,
) -> Cadence:
    """The cadence after a check whose outcome is given. `alerting` means a lasting condition is
    open (one-shot events such as a retry restart the early-risk ramp instead)."""
    if terminal:
        return Cadence(phase=Phase.TERMINAL)
    if alerting:
        return Cadence(phase=Phase.ALERT, early_index=0, healthy_streak=0)
    if new_attempt:
        return Cadence(phase=Phase.EARLY, early_index=0, healthy_streak=0)
    if cadence.phase is Phase.ALERT:
        streak = cadence.healthy_streak + 1
        if streak >= policy.healthy_checks_to_calm:
            return Cadence(phase=Phase.EARLY, early_index=0, healthy_streak=0)
        return replace(cadence, healthy_streak=streak)
    if cadence.phase is Phase.EARLY:
        index = cadence.early_index + 1
        if index >= len(policy.early_s):
            return Cadence(phase=Phase.CRUISE)
        return replace(cadence, early_index=index)
    return cadence


def next_interval(
    cadence: Cadence,
    policy: CadencePolicy,
    now: datetime,
    *,
    deadline_at: datetime | None = None,
) -> float | None:
    """Seconds until the next check, or None when the run needs no more checks.
    Never sleeps past the run's deadline: the deadline itself is a check."""
    if cadence.phase is Phase.TERMINAL:
        return None
    if cadence.phase is Phase.ALERT:
        interval = policy.scaled(policy.alert_s)
    elif cadence.phase is Phase.EARLY and cadence.early_index < len(policy.early_s):
        interval = policy.scaled(policy.early_s[cadence.early_index])
    else:
        interval = policy.scaled(policy.cruise_s)
    if deadline_at is not None:
        until_deadline = (deadline_at - now).total_seconds()
        if 0 < until_deadline < interval:
            interval = max(policy.min_interval_s, until_deadline)
        elif until_deadline <= 0:
            # Past it, the teardown grace runs: a 30 min cruise tick would overrun it.
            interval = min(interval, policy.scaled(policy.alert_s))
    return interval


def resume_delays(
    live: list[RunRecord], now: datetime, per_s: float
) -> list[tuple[RunRecord, float]]:
    """When each live run is first checked after a start: when it was due, but never more than
    `per_s` first checks a second (oldest due first: a run overdue the longest goes first)."""

    def due_s(record: RunRecord) -> float:
        due = record.next_check_at
        return 0.0 if due is None else (due - now).total_seconds()

    ordered = sorted(live, key=due_s)
    return [(record, max(0.0, due_s(record), i / per_s)) for i, record in enumerate(ordered)]
