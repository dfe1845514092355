"""`assess`: one check's health, findings and recovery action, from data and `now` alone.

Each rule is a small function returning a Finding or None. Lasting *conditions* open an alert
keyed by (run, condition) and close with one recovery message; one-shot *events* (a retry, a
traceback in a live attempt, a stall kill, the terminal state) are messages with a dedupe key.

Two different "heartbeats": the supervisor's own `heartbeat_at` (written every heartbeat_s even
while the trainer hangs) going stale means the supervisor is dead; the trainer's
`last_output_at` going stale, with the GPU idle, is a stall.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from core.cadence import CadencePolicy, advance, next_interval
from core.memory import MAX_ANNOUNCED, Memory, Sample
from core.protocol import ProbeSnapshot, SupervisorState


class Health(StrEnum):
    OK = "ok"
    ALERT = "alert"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True)
class Thresholds:
    heartbeat_stale_s: float = 120.0
    stale_checks: int = 2
    stall_after_s: float = 600.0
    gpu_low_pct: float = 10.0
    soft_hold_s: float = 600.0
    soft_checks: int = 2
    throughput_drop: float = 0.5
    unreachable_checks: int = 2
    resend_after_s: float = 4 * 3600.0
    max_stall_kills: int = 1


@dataclass(frozen=True, slots=True)
class Policy:
    thresholds: Thresholds = Thresholds()
    cadence: CadencePolicy = CadencePolicy()


@dataclass(frozen=True, slots=True)
class Observation:
    """What one check got: a parsed probe, or the transport's error."""

    at: datetime  # the watcher's clock when the check ran
    probe: ProbeSnapshot | None = None
    error: str | None = None
    host_key_changed: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    key: str  # condition name, or event key such as "attempt:3"
    reason: str
    soft: bool = False
    event: bool = False
    since: datetime | None = None  # a soft episode's first reading


@dataclass(frozen=True, slots=True)
class Assessment:
    health: Health
    findings: tuple[Finding, ...]
    memory: Memory
    state: SupervisorState | None
    kill_attempt: int | None = None
    new_attempt: bool = False
    # conditions this check could not judge (no reading): an open alert for them stays open
    unjudged: frozenset[str] = frozenset()
    # a soft signal seen once: check again within the hold instead of at the next cruise tick
    suspect: bool = False

    @property
    def conditions(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.event)

    @property
    def events(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.event)


ERROR_MARKERS = re.compile(
    r"Traceback \(most recent call last\)|^[\w.]*(Error|Exception): |CUDA error|"
    r"Segmentation fault|core dumped|NCCL (error|WARN .*timeout)",
    re.MULTILINE,
)


def assess(memory: Memory, obs: Observation, policy: Policy, now: datetime) -> Assessment:
    """Judge one check. Pure: no I/O, no clock but `now`."""
    t = policy.thresholds
    if obs.probe is None:
        return _assess_unreachable(memory, obs, policy, now)
    probe = obs.probe
    state = probe.state
    memory = replace(memory, unreachable_streak=0)
    if state is None:
        finding = _invalid_state(memory, probe, t, now)
        sample = Sample(at=probe.at, reachable=True)
        return _finish(memory.with_sample(sample), (finding,) if finding else (), policy, None)

    gpu_util = _mean_util(probe)
    sample = Sample(
        at=probe.at,
        reachable=True,
        status=state.status.value,
        attempt=state.attempt,
        step=state.step,
        last_output_at=state.last_output_at,
        gpu_util_pct=gpu_util,
        throughput=state.throughput,
    )
    previous = memory.samples
    memory = memory.with_sample(sample)
    if state.status.terminal:
        event = Finding(f"terminal:{state.status.value}", f"run {state.status.value}", event=True)
        return _finish(memory, (event,), policy, state, terminal=True)

    findings: list[Finding] = []
    # Attempt 2+ at the very first check is a retry too (a missing module fails in seconds).
    new_attempt = state.attempt > max(memory.attempt_seen, 1)
    if new_attempt:
        findings.append(_retry_event(state))
    if state.attempt > memory.attempt_seen:
        memory = replace(memory, attempt_seen=state.attempt, attempt_seen_at=probe.at)

    stale = _heartbeat_stale(state, probe, t)
    memory = replace(
        memory, heartbeat_stale_streak=memory.heartbeat_stale_streak + 1 if stale else 0
    )
    if stale and memory.heartbeat_stale_streak >= t.stale_checks:
        findings.append(Finding("supervisor_dead", _dead_reason(state, probe)))

    kill: int | None = None
    # Only an attempt already seen by an earlier check can be judged silent: a fresh attempt
    # still carries the previous attempt's last_output_at until its trainer prints.
    seen_before = any(s.attempt == state.attempt and s.reachable for s in previous)
    stall = _stall(state, probe, gpu_util, _silent_since(state, memory), t) if seen_before else None
    if stall:
        if state.attempt not in memory.stall_kills and len(memory.stall_kills) < t.max_stall_kills:
            kill = state.attempt
            memory = replace(memory, stall_kills=(*memory.stall_kills, state.attempt))
            findings.append(
                Finding(
                    f"stall_kill:{state.attempt}", f"{stall}; killing attempt to retry", event=True
                )
            )
        else:
            findings.append(Finding("stall", f"{stall}; already recovered once, needs a human"))

    traceback = _traceback_event(probe, state)
    if traceback and not new_attempt and state.status.value != "retrying":
        # a failed attempt the supervisor is retrying is reported once, as the retry
        findings.append(traceback)

    if not stall and not stale:
        rules: tuple[SoftRule, ...] = (_stale_output, _low_gpu, _slow)
        for rule in rules:
            soft = rule(state, probe, previous, sample, memory, t)
            if soft:
                findings.append(soft)
    unjudged = _unjudged(state, sample, memory)
    suspect = _suspect(state, sample, memory, t) and not any(f.soft for f in findings)
    memory = _update_baseline(memory, state, t)
    assessment = _finish(memory, tuple(findings), policy, state, kill=kill, new_attempt=new_attempt)
    return replace(assessment, unjudged=unjudged, suspect=suspect)


def _unjudged(state: SupervisorState, sample: Sample, memory: Memory) -> frozenset[str]:
    """No reading is no news: a missing GPU or throughput reading neither opens nor closes."""
    if state.status.value != "running":
        return frozenset()
    missing = set()
    if sample.gpu_util_pct is None:
        missing.add("low_gpu")
    if sample.throughput is None or memory.baseline_throughput is None:
        missing.add("slow")
    return frozenset(missing)


def _suspect(state: SupervisorState, sample: Sample, memory: Memory, t: Thresholds) -> bool:
    if state.status.value != "running":
        return False
    low_gpu = sample.gpu_util_pct is not None and sample.gpu_util_pct < t.gpu_low_pct
    base = memory.baseline_throughput
    slow = (
        base is not None
        and sample.throughput is not None
        and (sample.throughput < base * t.throughput_drop)
    )
    return low_gpu or slow


def _finish(
    memory: Memory,
    findings: tuple[Finding, ...],
    policy: Policy,
    state: SupervisorState | None,
    *,
    terminal: bool = False,
    kill: int | None = None,
    new_attempt: bool = False,
) -> Assessment:
    if any(f.key == "unreachable" for f in findings) or terminal:
        findings = tuple(f for f in findings if not f.soft)
    # an event (a retry, a traceback in an attempt, a stall kill) is announced once per key
    fresh = tuple(f for f in findings if f.event and f.key not in memory.announced)
    findings = tuple(f for f in findings if not f.event or f in fresh)
    if fresh:
        announced = (*memory.announced, *(f.key for f in fresh))[-MAX_ANNOUNCED:]
        memory = replace(memory, announced=announced)
    lasting = any(_keeps_alert_mode(f, memory) for f in findings)
    health = Health.TERMINAL if terminal else Health.ALERT if findings else Health.OK
    cadence = advance(
        memory.cadence,
        policy.cadence,
        alerting=lasting,
        terminal=terminal,
        new_attempt=new_attempt or kill is not None,
    )
    memory = replace(memory, cadence=cadence)
    return Assessment(health, findings, memory, state, kill_attempt=kill, new_attempt=new_attempt)


SOFT_SETTLE_S = 900.0  # under MAX_SAMPLES alert-mode checks, or an episode never looks old


def _keeps_alert_mode(finding: Finding, memory: Memory) -> bool:
    """Alert mode (3-minute checks) is for what is new or hard. A soft episode that has been
    reported and has held for SOFT_SETTLE_S is steady: the cadence calms down again (its alert
    stays open and is re-sent after resend_after_s)."""
    if finding.event:
        return False
    if not finding.soft or finding.since is None or not memory.samples:
        return True
    return (memory.samples[-1].at - finding.since).total_seconds() < SOFT_SETTLE_S


def _assess_unreachable(
    memory: Memory, obs: Observation, policy: Policy, now: datetime
) -> Assessment:
    streak = memory.unreachable_streak + 1
    memory = replace(memory, unreachable_streak=streak).with_sample(Sample(at=now, reachable=False))
    if obs.host_key_changed:
        reason = f"host key changed: {obs.error or 'refusing to connect'}; checks stopped"
        return _finish(memory, (Finding("host_key", reason),), policy, None)
    findings: tuple[Finding, ...] = ()
    if streak >= policy.thresholds.unreachable_checks:
        reason = f"unreachable for {streak} checks in a row: {obs.error or 'no answer'}"
        findings = (Finding("unreachable", reason),)
    return _finish(memory, findings, policy, None)


def _invalid_state(
    memory: Memory, probe: ProbeSnapshot, t: Thresholds, now: datetime
) -> Finding | None:
    error = probe.state_error or "state.json missing"
    young = (now - memory.launched_at).total_seconds() < t.heartbeat_stale_s
    if young and "missing" in error:
        return None  # the supervisor has not written its first state yet
    return Finding("invalid_state", f"cannot read the supervisor's state: {error}")


def _mean_util(probe: ProbeSnapshot) -> float | None:
    gpus = probe.gpus or (probe.state.gpus if probe.state else ())
    utils = [g.util_pct for g in gpus if g.util_pct is not None]
    return sum(utils) / len(utils) if utils else None


def _age_s(later: datetime, earlier: datetime | None) -> float | None:
    return None if earlier is None else (later - earlier).total_seconds()


def _heartbeat_stale(state: SupervisorState, probe: ProbeSnapshot, t: Thresholds) -> bool:
    age = _age_s(probe.at, state.heartbeat_at or state.started_at)
    return age is not None and age > t.heartbeat_stale_s


def _dead_reason(state: SupervisorState, probe: ProbeSnapshot) -> str:
    age = _age_s(probe.at, state.heartbeat_at) or 0.0
    return f"supervisor dead: no heartbeat for {age:.0f}s (pid {state.pid})"


def _silent_since(state: SupervisorState, memory: Memory) -> datetime | None:
    """When this attempt's trainer last printed. The supervisor keeps the previous attempt's
    last_output_at until the new trainer prints, so for a retry the moment this watcher first
    saw the attempt is a floor: it can under-count silence by one check, never invent it."""
    spoke = state.last_output_at or state.started_at
    retry_seen = state.attempt > 1 and memory.attempt_seen == state.attempt
    first_seen = memory.attempt_seen_at if retry_seen else None
    moments = [m for m in (spoke, first_seen) if m is not None]
    return max(moments) if moments else None


def _stall(
    state: SupervisorState,
    probe: ProbeSnapshot,
    gpu_util: float | None,
    since: datetime | None,
    t: Thresholds,
) -> str | None:
    if state.status.value != "running":
        return None
    age = _age_s(probe.at, since)
    if age is None or age < t.stall_after_s:
        return None
    if gpu_util is not None and gpu_util >= t.gpu_low_pct:
        return None  # silent but busy: a long eval, not a hang (the soft rule watches it)
    gpu = "GPU unreadable" if gpu_util is None else f"GPU {gpu_util:.0f}%"
    return f"trainer silent for {age:.0f}s with {gpu}"


def _retry_event(state: SupervisorState) -> Finding:
    failure = state.last_failure
    cause = f"{failure.kind.value} (exit {failure.exit_code})" if failure else "unknown cause"
    fixes = [f for f in state.fixes if f.attempt == state.attempt - 1] or list(state.fixes[-1:])
    fix = (
        f"; fix applied: {fixes[-1].action} ({'ok' if fixes[-1].ok else 'failed'})" if fixes else ""
    )
    reason = f"attempt {state.attempt}/{state.max_attempts} started after {cause}{fix}"
    return Finding(f"attempt:{state.attempt}", reason, event=True)


def _traceback_event(probe: ProbeSnapshot, state: SupervisorState) -> Finding | None:
    if probe.log is None or not probe.log.text:
        return None
    match = ERROR_MARKERS.search(probe.log.text)
    if match is None:
        return None
    line = probe.log.text[match.start() :].splitlines()[0][:200]
    return Finding(f"traceback:{state.attempt}", f"error marker in the log: {line}", event=True)


SoftRule = Callable[
    [SupervisorState, ProbeSnapshot, tuple[Sample, ...], Sample, Memory, Thresholds],
    Finding | None,
]


def _held_for(
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


def _soft(
    key: str, reason: str, count: int, since: datetime | None, now: datetime, t: Thresholds
) -> Finding | None:
    if count < t.soft_checks or since is None:
        return None
    if (now - since).total_seconds() < t.soft_hold_s:
        return None
    return Finding(key, reason, soft=True, since=since)


def _stale_output(
    state: SupervisorState,
    probe: ProbeSnapshot,
    previous: tuple[Sample, ...],
    sample: Sample,
    memory: Memory,
    t: Thresholds,
) -> Finding | None:
    age = _age_s(probe.at, _silent_since(state, memory))
    if state.status.value != "running" or age is None or age < t.soft_hold_s:
        return None
    same = [s for s in previous[-1:] if s.attempt == sample.attempt and s.step == sample.step]
    if not same or same[0].last_output_at != sample.last_output_at:
        return None
    return Finding("stale_output", f"no new step or output for {age / 60:.0f} min", soft=True)


def _low_gpu(
    state: SupervisorState,
    probe: ProbeSnapshot,
    previous: tuple[Sample, ...],
    sample: Sample,
    memory: Memory,
    t: Thresholds,
) -> Finding | None:
    if state.status.value != "running" or sample.gpu_util_pct is None:
        return None
    count, since = _held_for(
        memory.samples,
        lambda s: (
            s.status == "running"
            and s.attempt == sample.attempt
            and s.gpu_util_pct is not None
            and s.gpu_util_pct < t.gpu_low_pct
        ),
        max_gap_s=2 * t.soft_hold_s,
    )
    reason = (
        f"GPU utilisation {sample.gpu_util_pct:.0f}% (under {t.gpu_low_pct:.0f}%) while training"
    )
    return _soft("low_gpu", reason, count, since, probe.at, t)


def _slow(
    state: SupervisorState,
    probe: ProbeSnapshot,
    previous: tuple[Sample, ...],
    sample: Sample,
    memory: Memory,
    t: Thresholds,
) -> Finding | None:
    base = memory.baseline_throughput
    if base is None or state.status.value != "running" or sample.throughput is None:
        return None
    floor = base * t.throughput_drop
    count, since = _held_for(
        memory.samples,
        lambda s: (
            None
            if s.throughput is None and s.attempt == sample.attempt
            else s.attempt == sample.attempt and s.throughput is not None and s.throughput < floor
        ),
        # throughput is an average over a window, not an instant: sparse readings still count
        max_gap_s=float("inf"),
    )
    reason = f"throughput {sample.throughput:.2f} steps/s, under half the run's baseline {base:.2f}"
    return _soft("slow", reason, count, since, probe.at, t)


def _update_baseline(memory: Memory, state: SupervisorState, t: Thresholds) -> Memory:
    """Exponential average of throughput readings that are not themselves collapsed."""
    current = state.throughput
    if current is None or current <= 0 or state.status.value != "running":
        return memory
    base = memory.baseline_throughput
    if base is None:
        return replace(memory, baseline_throughput=current)
    if current < base * t.throughput_drop:
        return memory
    return replace(memory, baseline_throughput=0.8 * base + 0.2 * current)


def next_check_s(
    assessment: Assessment, policy: Policy, now: datetime, *, deadline_at: datetime | None = None
) -> float | None:
    """Seconds to the next check: the cadence's, but a suspect check (a soft signal seen once)
    is looked at again within the hold, so a real episode is confirmed on time and a chance
    reading is cleared, instead of either waiting for the next 30-minute tick."""
    interval = next_interval(
        assessment.memory.cadence, policy.cadence, now, deadline_at=deadline_at
    )
    if interval is not None and assessment.suspect:
        interval = min(interval, max(policy.thresholds.soft_hold_s, policy.cadence.min_interval_s))
    return interval
