"""A run's deadline (`max_hours`), pure: one warning an hour before, an alert at the deadline,
teardown once the grace after it has passed (unless /extend moved the deadline).

Called by core.decide once per check, beside the cost rule (core/cost.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from core.durations import format_duration, local_time
from core.rules import Finding
from core.vocab import Condition, Event

WARN_BEFORE_S = 3600.0


@dataclass(frozen=True, slots=True)
class DeadlineVerdict:
    findings: tuple[Finding, ...] = ()
    warned: bool = False
    teardown: bool = False


def judge_deadline(
    deadline_at: datetime | None,
    now: datetime,
    *,
    warned: bool,
    grace_s: float,
    tz: tzinfo = UTC,
) -> DeadlineVerdict:
    """`tz`: the zone the person reads times in (`[telegram] timezone`)."""
    if deadline_at is None:
        return DeadlineVerdict(warned=warned)
    left_s = (deadline_at - now).total_seconds()
    key_stamp = deadline_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
    stamp = local_time(deadline_at, now, tz)
    if left_s > WARN_BEFORE_S:
        return DeadlineVerdict(warned=False)
    if left_s > 0:
        if warned:
            return DeadlineVerdict(warned=True)
        reason = (
            f"deadline {stamp} in {format_duration(left_s)}: the instance will be torn down "
            f"{format_duration(grace_s)} after it unless you /extend"
        )
        finding = Finding(Event.DEADLINE_WARNING.key(key_stamp), reason, event=True)
        return DeadlineVerdict((finding,), True)
    overdue_s = -left_s
    if overdue_s < grace_s:
        reason = (
            f"deadline {stamp} passed: teardown in {format_duration(grace_s - overdue_s)} "
            "unless you /extend"
        )
        return DeadlineVerdict((Finding(Condition.DEADLINE, reason),), warned=True)
    reason = f"deadline {stamp} passed {format_duration(overdue_s)} ago: tearing down"
    return DeadlineVerdict((Finding(Condition.DEADLINE, reason),), warned=True, teardown=True)
