"""What a slowdown has cost a run, pure: the `slow` rule's gate (core/throughput.py).

A sag is this attempt's rate under the recovered line (`throughput_recovered`, 85 % of the
run's baseline). Its cost is the run's time lost to it: the integral of (1 - rate/baseline)
over the sag, in seconds of training at the run's own rate, summed reading by reading.
Kept in Memory (`sag_since`, `sag_lost_s`, and the attempt's newest reading `read_at`,
`read_rate`) from one check to the next, so a restarted watcher goes on counting.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from core.findings import Thresholds
from core.memory import Memory, Sample
from core.vocab import RunStatus


def sag_after(
    memory: Memory, previous: tuple[Sample, ...], sample: Sample, t: Thresholds
) -> tuple[datetime | None, float]:
    """The sag this check leaves: its first reading and what it has cost the run so far, in
    seconds of training at the run's own rate. A sag is the rate under the recovered line.
    Each reading adds the time since the attempt's previous reading at the mean of the two
    readings' shortfalls from the baseline (the rate between readings is not seen: an eval
    or an unreachable hour is costed from the readings either side). A reading back at the
    recovered line ends the sag; a new attempt starts afresh; a check with no reading, or a
    run not running, changes nothing."""
    base, rate = memory.baseline_throughput, sample.throughput
    if rate is None or base is None or base <= 0 or sample.status != RunStatus.RUNNING:
        return memory.sag_since, memory.sag_lost_s
    if rate >= base * t.throughput_recovered:
        return None, 0.0
    if not previous or previous[-1].attempt != sample.attempt:
        return sample.at, 0.0
    lost, last_at, last_rate = memory.sag_lost_s, memory.read_at, memory.read_rate
    if memory.sag_since is None:
        lost = 0.0
    if last_at is not None and last_rate is not None and sample.at > last_at:
        shortfall = max(0.0, 1.0 - last_rate / base) + (1.0 - rate / base)
        lost += (sample.at - last_at).total_seconds() * shortfall / 2
    return memory.sag_since or sample.at, lost


def remember_sag(
    memory: Memory, previous: tuple[Sample, ...], sample: Sample, t: Thresholds
) -> Memory:
    """Keep the sag (`sag_after`) and this attempt's newest reading for the next check."""
    new_attempt = bool(previous) and previous[-1].attempt != sample.attempt
    if new_attempt:
        memory = replace(memory, read_at=None, read_rate=None, sag_since=None, sag_lost_s=0.0)
    since, lost = sag_after(memory, previous, sample, t)
    if sample.throughput is None or sample.status != RunStatus.RUNNING:
        return memory
    return replace(
        memory, sag_since=since, sag_lost_s=lost, read_at=sample.at, read_rate=sample.throughput
    )
