"""Throughput against the run's own established rate, pure: the `slow` rule, the established
rate (the baseline) it is judged against, and what its message says.

Called by core.soft_rules (`slow` is one of SOFT_RULES, run by core.rules.assess for a live
run) and by core.rules (`remember_throughput` after each check). The watcher
(core/watcher.py) and the detection bench (bench/detection_sim.py) both reach it through the
same core.decide.decide, so the bench measures this code and no model of it.

What a person needs told: a run that goes slower than it went will miss its deadline or cost
far more, whatever the cause (a leaking dataloader, thermal throttling, a filling disk). It is
not a stall: the trainer prints, and nothing is killed. It is told, once and silently, when
the readings have been under `throughput_drop` (70 %) of the run's own established rate for
`slow_hold_s` (30 min) and `slow_checks` checks (one between that line and the recovered one,
a noisy reading of a rate just under the line, is no news; one at the recovered line ends
it): longer than a transient dip lasts (a background checkpoint upload, a noisy neighbour),
and a collapse and a slow decay alike.
Once in, the episode lasts until readings hold above `throughput_recovered` (85 %) for
`soft_hold_s` and `soft_checks` checks: a decay whose noisy readings cross the line back and
forth is one message, not a drip, and the open alert is not re-sent on a timer
(ConditionTraits.repeat). A reading back at that line is looked at again within `soft_hold_s`
(`recovering`, through core.rules.next_check_s), so a recovery is confirmed or refuted while it
lasts, not at a cruise tick that may land in the next slow phase. A missing reading is no news.
Such a slowdown is news only once it has also cost the run `slow_lost_s` (an hour) of its time,
or a quarter more than the most any of its recovered sags cost (core/slowdown_cost.py): a slow
phase that comes back before then is the run's own business; a collapse to 30 % is told after
about 86 min, a decay once it has cost the hour. One that makes the run miss its deadline or
max_cost (and would not at its own rate) is told at the hold (core/slowdown_cost.py
`deadline_gate`, applied by core.decide). One whose GPU kept its work (as busy, drawing as much
power: heavier steps, a batch ramp) is not told and its rate becomes the run's
(core/gpu_work.py, core/baseline.py). Each dip under the line that came back to
the recovered line is also remembered with the longest it may have lasted (`dips_s`): the
message says it.
The message says how far the rate fell, what it has cost so far and, when the total is known,
what it costs in time: the remaining steps at this rate against the same steps at the baseline.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, tzinfo

from core.baseline import heavier_steps, held_since, update_baseline
from core.durations import format_duration, local_time
from core.findings import Finding, Thresholds, held_for, soft_held
from core.gpu_work import slowed_text
from core.memory import MAX_DIPS, Memory, Sample
from core.protocol import ProbeSnapshot, SupervisorState
from core.silence import used_gpus
from core.slowdown_cost import learned_lost_s, remember_sag, sag_after, steps_left
from core.vocab import Condition, RunStatus


def slow(
    state: SupervisorState,
    probe: ProbeSnapshot,
    previous: tuple[Sample, ...],
    sample: Sample,
    memory: Memory,
    t: Thresholds,
) -> Finding | None:
    """The `slow` soft condition for this check, or None (judged on `memory.samples`, which
    already hold this check's sample)."""
    base = memory.baseline_throughput
    rate = sample.throughput
    if base is None or base <= 0 or state.status is not RunStatus.RUNNING or rate is None:
        return None
    _, lost = sag_after(memory, previous, sample, t)
    since = _episode_since(memory, previous, sample, base, probe.at, lost, t)
    if since is None:
        return None
    usual_s = max(memory.dips_s, default=0)
    reason = slow_reason(sample, rate, base, since, probe.at, usual_s=usual_s, lost_s=lost)
    said = slowed_text(used_gpus(probe))
    return Finding(Condition.SLOW, f"{reason}; {said}" if said else reason, soft=True, since=since)


def _episode_since(
    memory: Memory,
    previous: tuple[Sample, ...],
    sample: Sample,
    base: float,
    now: datetime,
    lost_s: float,
    t: Thresholds,
) -> datetime | None:
    """When the slow episode this reading belongs to began; None: no episode. A new one is
    news once its sag has cost the run what `learned_lost_s` asks of it (`lost_s`)."""
    same_attempt = bool(previous) and previous[-1].attempt == sample.attempt
    if memory.slow_since is not None and same_attempt:
        return None if _recovered(memory, sample, base, now, t) else memory.slow_since
    since = held_since(memory, sample.attempt, base, now, t)
    if since is None or lost_s < learned_lost_s(memory, t):
        return None
    return None if heavier_steps(memory, sample.attempt, base, t) else since


def _recovered(memory: Memory, sample: Sample, base: float, now: datetime, t: Thresholds) -> bool:
    """An open episode ends as it began, on readings that hold: back above the recovered line
    for `soft_hold_s` and `soft_checks` checks (one fast reading is no recovery)."""
    line = base * t.throughput_recovered
    count, since = held_for(
        memory.samples,
        lambda s: (
            None if s.throughput is None else s.attempt == sample.attempt and s.throughput >= line
        ),
        max_gap_s=float("inf"),
    )
    return soft_held(count, since, now, t)


def slow_reason(
    sample: Sample,
    rate: float,
    base: float,
    since: datetime,
    now: datetime,
    usual_s: float = 0.0,
    lost_s: float = 0.0,
) -> str:
    """`throughput 0.90 steps/s, 45 % of the run's baseline 2.00 steps/s, low for 1h40m,
    costing the run 1h2m so far: at this rate the remaining 36,000 steps take 11h07m (5h00m
    at the baseline)`; `usual_s`: the longest dip the run recovered from, said when it has
    one; `lost_s`: what the slowdown has cost the run (its time at its own rate)."""
    held = format_duration(round((now - since).total_seconds() / 60) * 60)
    text = (
        f"throughput {rate:.2f} steps/s, {100 * rate / base:.0f} % of the run's baseline "
        f"{base:.2f} steps/s, low for {held}"
    )
    if lost_s >= 60:
        text += f", costing the run {_span(lost_s)} so far"
    if usual_s > 0:
        text += f" (its slow phases so far came back within {_span(usual_s)})"
    left = steps_left(sample)
    if left is None or rate <= 0:
        return text
    return (
        f"{text}: at this rate the remaining {left:,} steps take {_span(left / rate)} "
        f"({_span(left / base)} at the baseline)"
    )


def past_due(
    finding: Finding, sample: Sample, due_at: datetime, what: str, now: datetime, tz: tzinfo
) -> Finding:
    """The slow finding, its reason also saying when the run would end at this rate if that is
    after `due_at`, when its deadline or max_cost (`what`) stops it. Called by core.decide,
    which knows the run's deadline and cap."""
    left = steps_left(sample)
    rate = sample.throughput
    if finding.key != Condition.SLOW or left is None or not rate or rate <= 0:
        return finding
    end = now + timedelta(seconds=left / rate)
    if end <= due_at:
        return finding
    later = f"{finding.reason}; it would end {local_time(end, now, tz)}, after its {what} stops it"
    return replace(finding, reason=f"{later} at {local_time(due_at, now, tz)}")


def _span(seconds: float) -> str:
    return format_duration(max(60, round(seconds / 60) * 60))


def remember_throughput(
    memory: Memory,
    previous: tuple[Sample, ...],
    sample: Sample,
    found: tuple[Finding, ...],
    state: SupervisorState,
    t: Thresholds,
) -> Memory:
    """What the next check needs of this one's throughput: the open episode, the run's dips,
    its established rate (in this order: the dip is judged on the rate the rule judged by)."""
    memory = remember_dips(remember_slow(memory, found, sample), previous, sample, t)
    return update_baseline(remember_sag(memory, previous, sample, t), state, sample, t)


def remember_dips(
    memory: Memory, previous: tuple[Sample, ...], sample: Sample, t: Thresholds
) -> Memory:
    """Follow the run's own dips: the first reading under the slow line opens one (it began
    after the reading before it), the first reading back at the recovered line closes it and
    keeps the longest it may have lasted (the newest MAX_DIPS). A new attempt drops an open dip
    (it was another attempt's); a check with no reading, or not running, changes nothing else."""
    base, rate = memory.baseline_throughput, sample.throughput
    if previous and previous[-1].attempt != sample.attempt and memory.dip_since:
        memory = replace(memory, dip_since=None, dip_after=None)
    if sample.status != RunStatus.RUNNING or base is None or base <= 0 or rate is None:
        return memory
    if rate < base * t.throughput_drop and memory.dip_since is None:
        return replace(memory, dip_since=sample.at, dip_after=_last_reading(previous, sample))
    if rate >= base * t.throughput_recovered and memory.dip_since is not None:
        lasted = (sample.at - (memory.dip_after or memory.dip_since)).total_seconds()
        dips = (*memory.dips_s, lasted)[-MAX_DIPS:]
        return replace(memory, dip_since=None, dip_after=None, dips_s=dips)
    return memory


def _last_reading(previous: tuple[Sample, ...], sample: Sample) -> datetime:
    """The newest earlier reading of this attempt (the dip began after it), else this one."""
    earlier = _newest_reading(previous, sample.attempt)
    return sample.at if earlier is None else earlier.at


def remember_slow(memory: Memory, found: tuple[Finding, ...], sample: Sample) -> Memory:
    """Keep the open episode's start for the next check. A check with no reading (or whose
    soft rules did not run) changes nothing: no news is neither a recovery nor a new episode."""
    if sample.throughput is None:
        return memory
    since = next((f.since for f in found if f.key == Condition.SLOW), None)
    return memory if since == memory.slow_since else replace(memory, slow_since=since)


def suspect_slow(sample: Sample, memory: Memory, t: Thresholds) -> bool:
    """A reading under the line: looked at again every soft_hold_s, not at the next cruise tick,
    so an episode is confirmed about `slow_hold_s` after it began. A check with no reading (it
    landed in an eval) keeps the suspicion of the last reading: no news clears nothing, and a
    cruise cadence that keeps landing in evals must not hide a slide for hours."""
    base, last = memory.baseline_throughput, _last_rate(sample, memory)
    return base is not None and last is not None and last < base * t.throughput_drop


def recovering(sample: Sample, memory: Memory, t: Thresholds) -> bool:
    """An episode still open (`memory` as this check left it) whose last reading is back at the
    recovered line: looked at again within soft_hold_s, so the recovery is confirmed (the alert
    closes) or refuted while it lasts. At the cruise tick the next reading may land in the
    run's next slow phase: the recovery is never seen to hold, and the open alert hides a true
    decay under it for good. So is a sag left open under a reading now at the line (the run's
    first readings moved the baseline down under it): the next reading says which it was."""
    base, last = memory.baseline_throughput, _last_rate(sample, memory)
    if base is None or last is None or last < base * t.throughput_recovered:
        return False
    return memory.slow_since is not None or memory.sag_since is not None


def _last_rate(sample: Sample, memory: Memory) -> float | None:
    """This attempt's newest reading (`memory.samples` hold this check's)."""
    newest = _newest_reading(memory.samples, sample.attempt)
    return None if newest is None else newest.throughput


def _newest_reading(samples: tuple[Sample, ...], attempt: int) -> Sample | None:
    """The newest of `samples` of `attempt` that has a throughput reading."""
    readings = (s for s in reversed(samples) if s.attempt == attempt and s.throughput is not None)
    return next(readings, None)
