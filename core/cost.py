"""A run's money, pure: the `max_cost` cap and the live estimate shown by /runs.

The cap is a deadline in dollars. At the run's hourly price (`dph_total`, read from the
provider at launch, or the run's own `dph_total` setting) the spend reaches the limit at a
known moment, `cap_at`; the rule warns an hour of spend ahead (once per limit), then the
watcher stops the run and tears it down (collect first, like any ending) the first check at or
after it. `/extend RUN DURATION` raises the limit by DURATION at the hourly price, so the cap
moves exactly as far as the deadline does. Called by core/watcher.py once per check, beside
the deadline rule (core/deadline.py); `projected_usd` is called by core/control.py for /runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from core.durations import format_duration, local_time
from core.findings import Finding
from core.memory import Memory
from core.models import RunRecord
from core.vocab import Condition, Event

WARN_BEFORE_S = 3600.0


def spent_usd(dph_total: float, since: datetime, until: datetime) -> float:
    hours = max(0.0, (until - since).total_seconds() / 3600)
    return hours * dph_total


def cost_limit(max_cost: float | None, extended_usd: float) -> float | None:
    """The run's limit: its `max_cost` plus what /extend added. None: no cap."""
    return None if max_cost is None else max_cost + max(0.0, extended_usd)


def cap_at(launched_at: datetime, limit_usd: float, dph_total: float) -> datetime | None:
    """When the spend reaches the limit at this price (None: a free instance never does)."""
    if dph_total <= 0:
        return None
    return launched_at + timedelta(hours=limit_usd / dph_total)


@dataclass(frozen=True, slots=True)
class CostVerdict:
    findings: tuple[Finding, ...] = ()
    warned: bool = False  # the warning for this limit was sent (kept in the run's memory)
    teardown: bool = False
    cap_at: datetime | None = None  # when the next check must look, at the latest


def judge_cost(
    limit_usd: float | None,
    dph_total: float | None,
    launched_at: datetime,
    now: datetime,
    *,
    warned: bool,
    tz: tzinfo = UTC,
) -> CostVerdict:
    """The cap's verdict for one check of a live run. A limit with no known price is an alert
    (the cap cannot be kept), never a silent pass. `tz`: the zone the person reads times in."""
    if limit_usd is None:
        return CostVerdict()
    if dph_total is None:
        reason = (
            f"max_cost ${limit_usd:.2f} cannot be kept: the instance's hourly price is unknown "
            "(set dph_total in the run's [[runs]] entry)"
        )
        # an event (said once per run): a lasting alert would hold the run in alert cadence
        key = Event.COST_UNKNOWN.key(f"{limit_usd:.2f}")
        return CostVerdict((Finding(key, reason, event=True),))
    capped_at = cap_at(launched_at, limit_usd, dph_total)
    if capped_at is None:
        return CostVerdict()
    spent = spent_usd(dph_total, launched_at, now)
    left_s = (capped_at - now).total_seconds()
    money = f"${spent:.2f} of max_cost ${limit_usd:.2f} at ${dph_total:.2f}/h"
    if left_s > WARN_BEFORE_S:
        return CostVerdict(cap_at=capped_at)
    if left_s > 0:
        if warned:
            return CostVerdict(warned=True, cap_at=capped_at)
        stamp = local_time(capped_at, now, tz)
        reason = (
            f"{money}: the cap is reached at {stamp} (in {format_duration(left_s)}); the run "
            "will then be stopped and its instance destroyed unless you /extend"
        )
        key = Event.COST_WARNING.key(f"{limit_usd:.2f}")
        return CostVerdict((Finding(key, reason, event=True),), True, cap_at=capped_at)
    reason = f"{money}: the cap is reached: stopping the run and destroying the instance"
    finding = Finding(Condition.COST_CAP, reason)
    return CostVerdict((finding,), warned=True, teardown=True, cap_at=capped_at)


@dataclass(frozen=True, slots=True)
class Estimate:
    """/runs' money line: spent so far, and the projected total at the current throughput."""

    spent_usd: float
    projected_usd: float | None = None  # None: steps, total or throughput unknown
    finish_at: datetime | None = None


def estimate(
    dph_total: float,
    launched_at: datetime,
    now: datetime,
    *,
    step: int | None,
    total_steps: int | None,
    throughput: float | None,
) -> Estimate:
    """Pure. The projection assumes the price and the recent throughput (steps/s) hold."""
    spent = spent_usd(dph_total, launched_at, now)
    if step is None or total_steps is None or not throughput or throughput <= 0:
        return Estimate(spent)
    left_s = max(0, total_steps - step) / throughput
    finish = now + timedelta(seconds=left_s)
    return Estimate(spent, spent + left_s / 3600 * dph_total, finish)


def projected_usd(record: RunRecord, now: datetime) -> float | None:
    """/runs' live estimate for a run row: its spend so far plus the rest of its steps at the
    throughput of its newest check that read a step. None for an ended run or unknowns."""
    if not record.live or record.ended_at is not None or record.dph_total is None:
        return None
    samples = Memory.from_json(record.memory).samples if record.memory else ()
    last = next((s for s in reversed(samples) if s.step is not None), None)
    if last is None:
        return None
    return estimate(
        record.dph_total,
        record.launched_at,
        now,
        step=last.step,
        total_steps=last.total_steps,
        throughput=last.throughput,
    ).projected_usd
