"""The run's own established rate (the baseline the `slow` rule judges by), pure. Called by
core.throughput.remember_throughput after each check."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from statistics import median

from core.findings import Thresholds
from core.memory import Memory
from core.protocol import SupervisorState
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
# A sag that began in the run's first half hour of training (WARM_UP_S) and still holds an
# hour after it (SETTLED_AFTER) is the run settling after a warm-up (short sequences first, a
# warm cache, boost clocks before the thermal limit): its readings become the run's rate and
# the sag is dropped, untold. A rate learned from a run's first readings made one that settled
# lower look slow for good (the bench's held-out startup_burst: 18.7-21.7 % of runs told). The
# price: a slowdown that begins in the first half hour and lasts is never told (its shortfall
# has cost under the hour's gate by then). Ignoring the warm-up's readings instead learned the
# rate from readings hours apart and took some in a dip or a step for the rate.
WARM_UP_S = 1800.0
SETTLED_AFTER = timedelta(hours=1)  # a warm-up sag that holds this long after it settled


def update_baseline(memory: Memory, state: SupervisorState, t: Thresholds) -> Memory:
    """The run's established rate (FIRST_READINGS, MIN_WEIGHT; a warm-up that settled lower,
    WARM_UP_S)."""
    current = state.throughput
    if current is None or current <= 0 or state.status is not RunStatus.RUNNING:
        return memory
    base = memory.baseline_throughput
    if base is None:
        at = memory.rate_from or (memory.samples[-1].at if memory.samples else None)
        return replace(memory, baseline_throughput=current, baseline_readings=1, rate_from=at)
    memory = _settled(memory)
    base = memory.baseline_throughput or base
    floor = base * t.throughput_drop
    if memory.slow_since is not None or current < floor:
        return memory  # a slow reading is not the run's rate, even among its first
    n = memory.baseline_readings + 1
    if n <= FIRST_READINGS:
        first = [s.throughput for s in memory.samples if s.throughput and s.throughput >= floor]
        return replace(memory, baseline_throughput=median(first), baseline_readings=n)
    if current < base * t.throughput_recovered:
        return memory
    weight = max(1 / n, MIN_WEIGHT)
    return replace(
        memory, baseline_throughput=(1 - weight) * base + weight * current, baseline_readings=n
    )


def _settled(memory: Memory) -> Memory:
    """The rate of a run whose warm-up sag still holds an hour after the warm-up: the
    median of the sag's readings, established (the mean goes on from it); the sag dropped. The
    sag began between its first reading and the one before: halfway, most likely."""
    start, sag = memory.rate_from, memory.sag_since
    if start is None or sag is None or memory.slow_since is not None or not memory.samples:
        return memory
    newest, warm_up = memory.samples[-1], timedelta(seconds=WARM_UP_S)
    mine = [s for s in memory.samples if s.attempt == newest.attempt and s.throughput]
    before = [s.at for s in mine if s.at < sag]
    began = sag if not before else before[-1] + (sag - before[-1]) / 2  # most likely then
    if began >= start + warm_up or newest.at < start + warm_up + SETTLED_AFTER:
        return memory
    readings = [s.throughput for s in mine if s.at >= sag and s.throughput]
    if not readings:
        return memory
    return replace(
        memory,
        baseline_throughput=median(readings),
        baseline_readings=FIRST_READINGS,
        rate_from=None,  # once
        sag_since=None,
        sag_lost_s=0.0,
        sag_rate=None,
        sag_readings=0,
        dip_since=None,
        dip_after=None,
    )
