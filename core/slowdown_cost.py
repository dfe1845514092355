"""What a slowdown has cost a run, pure: the `slow` rule's gate (core/throughput.py).

A sag is this attempt's rate under the recovered line (`throughput_recovered`, 85 % of the
run's baseline). Its cost is the run's time lost to it: the integral of (1 - rate/baseline)
over the sag, in seconds of training at the run's own rate, summed reading by reading.
Kept in Memory (`sag_since`, `sag_lost_s`, and the attempt's newest reading `read_at`,
`read_rate`) from one check to the next, so a restarted watcher goes on counting.

A run whose rate regularly sags and comes back (generation interleaved with training, a
costlier curriculum stage, a neighbour on a shared node) has those sags as part of its normal
behaviour: each recovered sag is remembered with the most it may have cost (its readings', and
the interval to the reading back at the line at the last one's shortfall), and a slowdown is
news once it has cost DIP_MARGIN x the most of the newest MAX_DIPS (never less than
`slow_lost_s`, never more than LOST_CAP x it: a run that once lost hours does not silence the
rule for good). A run with no recovered sag is judged on `slow_lost_s` alone. The gate is
waived (`deadline_gate`, applied by core.decide) when at this rate the run would miss its
deadline or max_cost and at its own rate would not.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from core.findings import Thresholds
from core.memory import MAX_DIPS, Memory, Sample
from core.protocol import SupervisorState
from core.vocab import RunStatus

# a slowdown must cost a quarter more than the most any of the run's recovered sags may have
DIP_MARGIN = 1.25
LOST_CAP = 4.0
# a deep sag ends on a reading half again its own level (`back_line`)
BACK_FACTOR = 1.5
LEVEL_SPREAD = 1.3  # a reading this far above the sag's level is not of it (`_sag_level`)


def deadline_gate(
    t: Thresholds,
    state: SupervisorState | None,
    base: float | None,
    due_at: datetime | None,
    now: datetime,
) -> Thresholds:
    """The thresholds with the cost gate waived when the slowdown is what makes the run miss its
    deadline or max_cost (`due_at`, whichever stops it first; `now` on the same clock): at this
    rate it would end after `due_at`, at its own rate before it. Waiting for the hour's cost
    would spend hours a person could use to act (/extend, or fix the host). For a run that
    would miss it even at its own rate the slowdown does not change that outcome: the gate
    stands (the deadline's hour-ahead warning still comes)."""
    if state is None or due_at is None or not base or base <= 0:
        return t
    left, rate = _left(state.step, state.total_steps), state.throughput
    if left is None or not rate or rate <= 0:
        return t
    ends_at, ends_at_base = (now + timedelta(seconds=left / r) for r in (rate, base))
    return replace(t, slow_lost_s=0.0) if ends_at > due_at >= ends_at_base else t


def steps_left(sample: Sample) -> int | None:
    return _left(sample.step, sample.total_steps)


def _left(step: int | None, total: int | None) -> int | None:
    return None if step is None or not total or total <= step else total - step


def learned_lost_s(memory: Memory, t: Thresholds) -> float:
    """What a slowdown must have cost to be news: `slow_lost_s`, or DIP_MARGIN x the most one
    of the run's recovered sags may have cost when that is more (at most LOST_CAP x it)."""
    learned = DIP_MARGIN * max(memory.sags_lost_s, default=0.0)
    return max(t.slow_lost_s, min(learned, LOST_CAP * t.slow_lost_s))


def sag_after(
    memory: Memory, previous: tuple[Sample, ...], sample: Sample, t: Thresholds
) -> tuple[datetime | None, float]:
    """The sag this check leaves: its first reading and what it has cost the run so far, in
    seconds of training at the run's own rate. A sag is the rate under the recovered line.
    Each reading adds the time since the attempt's previous reading at the mean of the two
    readings' shortfalls from the baseline (the rate between readings is not seen: an eval
    or an unreachable hour is costed from the readings either side). A reading back at
    `back_line` ends the sag; a new attempt starts afresh; a check with no reading, or a run
    not running, changes nothing."""
    base, rate = memory.baseline_throughput, sample.throughput
    if rate is None or base is None or base <= 0 or sample.status != RunStatus.RUNNING:
        return memory.sag_since, memory.sag_lost_s
    if not previous or previous[-1].attempt != sample.attempt:
        return (None, 0.0) if rate >= base * t.throughput_recovered else (sample.at, 0.0)
    if rate >= back_line(memory, base, t):
        return None, 0.0
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
    """Keep the sag (`sag_after`) and this attempt's newest reading for the next check; a sag
    that ended is learned with the most it may have cost (another attempt's open one is not)."""
    new_attempt = bool(previous) and previous[-1].attempt != sample.attempt
    if new_attempt:
        memory = replace(memory, read_at=None, read_rate=None, sag_since=None, sag_lost_s=0.0)
    if sample.throughput is None or sample.status != RunStatus.RUNNING:
        return memory
    since, lost = sag_after(memory, previous, sample, t)
    if since is None and memory.sag_since is not None:
        memory = replace(
            memory, sags_lost_s=(*memory.sags_lost_s, _most(memory, sample))[-MAX_DIPS:]
        )
    level, count = _sag_level(memory, sample, since, t)
    return replace(
        memory,
        sag_since=since,
        sag_lost_s=lost,
        read_at=sample.at,
        read_rate=sample.throughput,
        sag_rate=level,
        sag_readings=count,
    )


def _sag_level(
    memory: Memory, sample: Sample, since: datetime | None, t: Thresholds
) -> tuple[float | None, int]:
    """The sag's level: the mean of its readings under the slow line, and how many. A noisy
    healthy reading is not of it: one that opened the sag above that line, or one just under
    it between two phases (more than LEVEL_SPREAD x the level)."""
    base, rate = memory.baseline_throughput, sample.throughput
    if since is None:
        return None, 0
    level, count = (memory.sag_rate, memory.sag_readings) if memory.sag_since else (None, 0)
    if rate is None or not base or rate >= base * t.throughput_drop:
        return level, count
    if level is None or not count:
        return rate, 1
    if rate > LEVEL_SPREAD * level:
        return level, count  # a healthy reading between two phases, just under the line
    return (level * count + rate) / (count + 1), count + 1


def back_line(memory: Memory, base: float, t: Thresholds) -> float:
    """The rate a reading must reach to end the open sag: the recovered line, or for a deep sag
    BACK_FACTOR x its level (`_sag_level`) when that is lower, never under the slow line. Under
    noise a healthy reading after a slow phase often misses the recovered line: the sag went
    on into the run's next phase and their costs added up to an alert. A run that stepped
    down or decays does not read half again its own level (its sag goes on); a phase that
    ends does."""
    line = base * t.throughput_recovered
    if memory.sag_since is None or memory.sag_rate is None:
        return line
    return max(base * t.throughput_drop, min(line, BACK_FACTOR * memory.sag_rate))


def _most(memory: Memory, back: Sample) -> float:
    """The most an ended sag may have cost: it may have lasted until just before the reading
    back at the line, at its last reading's shortfall."""
    base, last_at, last_rate = memory.baseline_throughput, memory.read_at, memory.read_rate
    if not base or last_at is None or last_rate is None or back.at <= last_at:
        return memory.sag_lost_s
    tail = (back.at - last_at).total_seconds() * max(0.0, 1.0 - last_rate / base)
    return memory.sag_lost_s + tail
