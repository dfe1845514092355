"""The values the rules produce and share: health, thresholds, findings, and how long a
trainer has been silent. Pure.

Shared by the rules (core.rules, hard_rules, soft_rules, silence, disk, cost); Thresholds is
built from the config by core.config_sections.ThresholdsConfig.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from core.memory import Memory, Sample
from core.protocol import SupervisorState


class Health(StrEnum):
    OK = "ok"
    ALERT = "alert"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True)
class Thresholds:
    heartbeat_stale_s: float = 120.0
    stale_checks: int = 2
    stall_after_s: float = 600.0  # silent, GPUs idle, no CPU or I/O progress: kill once
    hang_after_s: float = 720.0  # silent, a GPU busy, no I/O: alert (never a blind kill)
    stall_unknown_after_s: float = 1800.0  # the tree's activity unknown: a kill waits longer
    silent_alert_s: float = 3600.0  # silent this long although busy: tell a human anyway
    gpu_low_pct: float = 10.0
    soft_hold_s: float = 600.0
    soft_checks: int = 2
    # slow: under this share of the run's own rate for `slow_hold_s` and `slow_checks` checks
    throughput_drop: float = 0.7
    slow_hold_s: float = 1800.0
    slow_checks: int = 3
    # ...and it has cost the run this much of its time (seconds of training at its own rate)
    slow_lost_s: float = 3600.0
    throughput_recovered: float = 0.85  # an open slow episode ends only back above this share
    unreachable_checks: int = 2
    # ...and unreachable for at least this long (first failed check to now): a network blip
    # shorter than this is not news; 0 = the count alone (config default: stall_after)
    unreachable_after_s: float = 0.0
    resend_after_s: float = 4 * 3600.0
    max_stall_kills: int = 1
    disk_low_mb: float = 10240.0  # free disk on the instance below this: an early alert


@dataclass(frozen=True, slots=True)
class Finding:
    key: str  # a core.vocab.Condition, or an Event key such as Event.ATTEMPT.key(3)
    reason: str
    soft: bool = False
    event: bool = False
    since: datetime | None = None  # a soft episode's first reading
    # Text from the instance that the reason refers to (a fix's command, a log line): shown
    # verbatim in the message's log block (<pre>), never inside a reason's bullet.
    quote: str | None = None


def age_s(later: datetime, earlier: datetime | None) -> float | None:
    return None if earlier is None else (later - earlier).total_seconds()


def silent_since(state: SupervisorState, memory: Memory) -> datetime | None:
    """When this attempt's trainer last printed. The supervisor keeps the previous attempt's
    last_output_at until the new trainer prints, so for a retry the moment this watcher first
    saw the attempt is a floor: it can under-count silence by one check, never invent it."""
    spoke = state.last_output_at or state.started_at
    retry_seen = state.attempt > 1 and memory.attempt_seen == state.attempt
    first_seen = memory.attempt_seen_at if retry_seen else None
    moments = [m for m in (spoke, first_seen) if m is not None]
    return max(moments) if moments else None


def held_for(
    samples: tuple[Sample, ...], holds: Callable[[Sample], bool | None], max_gap_s: float
) -> tuple[int, datetime | None]:
    """How many of the newest samples satisfy `holds` in a row, and when the first of them was.
    `holds` answers None for a sample that could not tell (no reading): it is skipped, so a
    missing reading neither breaks nor extends an episode. Two readings further apart than
    `max_gap_s` are not one episode: two checkpoint writes that a 30-minute cadence happens
    to land on are not a GPU idle for 30 minutes."""
    count, since = 0, None
    for sample in reversed(samples):
        verdict = holds(sample)
        if verdict is None:
            continue
        if not verdict or (since is not None and (since - sample.at).total_seconds() > max_gap_s):
            break
        count, since = count + 1, sample.at
    return count, since


def soft_held(count: int, since: datetime | None, now: datetime, t: Thresholds) -> bool:
    """A `held_for` streak long enough for a soft verdict: `soft_checks` checks and
    `soft_hold_s` from its first one to `now`."""
    return (
        count >= t.soft_checks
        and since is not None
        and (now - since).total_seconds() >= t.soft_hold_s
    )
