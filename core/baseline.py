"""The run's own rate, pure: the baseline the `slow` rule (core/throughput.py) judges readings
against, the GPU's work at it, and the sag held under its slow line.

A sag of heavier steps (core/gpu_work.py) that would be told becomes the run's rate instead.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from statistics import median

from core.findings import Thresholds, held_for
from core.gpu_work import as_busy, remember_work, sag_work
from core.memory import Memory, Sample
from core.models import RunRecord
from core.protocol import SupervisorState
from core.slowdown_cost import learned_lost_s
from core.vocab import RunStatus

# The run's own rate (the baseline): the median of its first FIRST_READINGS readings that are
# not slow (one fast window at the start does not set it), then the mean of its readings back
# at the recovered line, the newest weighing at least MIN_WEIGHT. Readings under that line never
# move it: a decay is measured against the run's earlier pace, not followed down until it is
# never "slow". Under noise that mean sits a little over the true rate (about 1.04-1.08 x at
# +-20-25 % readings, the low ones left out); the old fast-up, slow-down average sat near the
# top of them (1.09-1.16 x), every healthy reading looked like a shortfall, and a run's slow
# phases merged into alerts.
FIRST_READINGS = 5
MIN_WEIGHT = 0.05


def held_since(
    memory: Memory, attempt: int, base: float, now: datetime, t: Thresholds
) -> datetime | None:
    """The first reading of a sag held under the slow line for `slow_hold_s` and `slow_checks`
    checks; None: none held."""
    floor, line = base * t.throughput_drop, base * t.throughput_recovered
    count, since = held_for(
        memory.samples,
        lambda s: _under(s, attempt, floor, line),
        # throughput is an average over a window, not an instant: sparse readings count
        max_gap_s=float("inf"),
    )
    if count < t.slow_checks or since is None or (now - since).total_seconds() < t.slow_hold_s:
        return None
    return since


def heavier_steps(memory: Memory, attempt: int, base: float, t: Thresholds) -> bool:
    """The sag's kept readings (`sag_readings`) kept the GPU's work (core/gpu_work.py) at a
    rate over nothing (a rate of 0 is a stall's, not heavier steps), and the deadline gate has
    not waived the cost (`slow_lost_s` 0: the run would miss its deadline)."""
    if t.slow_lost_s <= 0:
        return False
    readings = sag_readings(memory, attempt, base, t)
    return _level(readings) > 0 and as_busy(memory, readings)


def _level(readings: list[Sample]) -> float:
    return median(s.throughput or 0.0 for s in readings) if readings else 0.0


def sag_readings(memory: Memory, attempt: int, base: float, t: Thresholds) -> list[Sample]:
    """The attempt's kept readings under the recovered line: the sag's (and, within the
    MAX_SAMPLES kept, an earlier dip's)."""
    line = base * t.throughput_recovered
    return [
        s
        for s in memory.samples
        if s.attempt == attempt
        and s.status == RunStatus.RUNNING
        and s.throughput is not None
        and s.throughput < line
    ]


def _under(s: Sample, attempt: int, floor: float, line: float) -> bool | None:
    """A reading under the slow line holds the episode; one back at the recovered line breaks
    it; one between the two (a noisy reading of a rate just under the line) is no news."""
    if s.attempt != attempt:
        return False  # another attempt's readings are not this episode
    if s.throughput is None or floor <= s.throughput < line:
        return None  # no reading (an eval longer than the window): no news
    return s.status == RunStatus.RUNNING and s.throughput < floor


def update_baseline(
    memory: Memory, state: SupervisorState, sample: Sample, t: Thresholds
) -> Memory:
    """The run's established rate (FIRST_READINGS, MIN_WEIGHT) and the GPU's work at it; a sag
    of heavier steps (`heavier_steps`) that would be told becomes the run's rate."""
    current = state.throughput
    if current is None or state.status is not RunStatus.RUNNING:
        return memory
    base = memory.baseline_throughput
    # before the `current` guard: `slow` judges a reading of 0 too, and they must agree
    if base is not None and _rebases(memory, sample, base, t):
        return _rebased(memory, sample.attempt, base, t)
    if current <= 0:
        return memory
    if base is None:
        memory = replace(memory, baseline_throughput=current, baseline_readings=1)
        return remember_work(memory, sample, 1.0)
    floor = base * t.throughput_drop
    if memory.slow_since is not None or current < floor:
        return memory  # a slow reading is not the run's rate, even among its first
    n = memory.baseline_readings + 1
    if n <= FIRST_READINGS:
        first = [s.throughput for s in memory.samples if s.throughput and s.throughput >= floor]
        memory = replace(memory, baseline_throughput=median(first), baseline_readings=n)
        return remember_work(memory, sample, 1 / n)
    if current < base * t.throughput_recovered:
        return memory
    weight = max(1 / n, MIN_WEIGHT)
    memory = replace(
        memory, baseline_throughput=(1 - weight) * base + weight * current, baseline_readings=n
    )
    return _lighter_again(remember_work(memory, sample, weight), t)


def _lighter_again(memory: Memory, t: Thresholds) -> Memory:
    """Heavier steps that are over: the run's rate back at the recovered line of the rate before
    them. /runs no longer says they are heavier."""
    was, now = memory.heavier_from, memory.baseline_throughput
    if was is None or now is None or now < was * t.throughput_recovered:
        return memory
    return replace(memory, heavier_at=None, heavier_from=None, heavier_to=None)


def _rebases(memory: Memory, sample: Sample, base: float, t: Thresholds) -> bool:
    """This check's sag would have been told (`_episode_since`) but for its heavier steps."""
    if memory.slow_since is not None or memory.sag_lost_s < learned_lost_s(memory, t):
        return False
    held = held_since(memory, sample.attempt, base, sample.at, t)
    return held is not None and heavier_steps(memory, sample.attempt, base, t)


def _rebased(memory: Memory, attempt: int, base: float, t: Thresholds) -> Memory:
    """The sag's level (the median of its kept readings) is the run's rate from now on, and its
    GPU work the work at that rate; the sag and its dip are over, not recovered (nothing is
    learned of the run's dips from them)."""
    readings = sag_readings(memory, attempt, base, t)
    util, work = sag_work(readings) or (memory.work_util_pct, memory.work_w)
    level = _level(readings)
    return replace(
        memory,
        heavier_at=memory.sag_since or (readings[0].at if readings else None),
        heavier_from=memory.heavier_from or base,  # the rate before the first of them
        heavier_to=level,
        baseline_throughput=level,
        work_util_pct=util,
        work_w=work,
        baseline_readings=max(memory.baseline_readings, FIRST_READINGS),
        sag_since=None,
        sag_lost_s=0.0,
        sag_rate=None,
        sag_readings=0,
        dip_since=None,
        dip_after=None,
    )


def heavier_of(record: RunRecord) -> tuple[datetime, float, float] | None:
    """/runs' note of a live run whose steps got heavier: when (the instance's clock), the rate
    before and the rate taken as its own then. None for an ended run, or one whose steps never
    got heavier or are back near the rate before."""
    if not record.live or not record.memory:
        return None
    memory = Memory.from_json(record.memory)
    was, taken = memory.heavier_from, memory.heavier_to
    if memory.heavier_at is None or was is None or taken is None:
        return None
    return memory.heavier_at, was, taken
