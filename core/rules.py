"""`assess`: one check's health, findings and recovery action, from data and `now` alone.

Called by core.decide.decide (the watcher's check and the detection bench) only; its rules
live in core.hard_rules (the supervisor dead, a silent trainer, a retry, a traceback),
core.soft_rules (soft signals) and core.silence; next_check_s turns them into the next check.

Each rule is a small function returning a Finding or None. Lasting *conditions* open an alert
keyed by (run, condition) and close with one recovery message; one-shot *events* (a retry, a
traceback in a live attempt, a stall kill, the terminal state) are messages with a dedupe key.

Two different "heartbeats": the supervisor's own `heartbeat_at` (written every heartbeat_s even
while the trainer hangs) going stale means the supervisor is dead; the trainer's
`last_output_at` going stale, with the GPU idle, is a stall.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from core.cadence import CadencePolicy, advance, next_interval
from core.findings import Finding, Health, Thresholds
from core.gpu_onset import onset_recheck_s
from core.hard_rules import ERROR_MARKERS as ERROR_MARKERS
from core.hard_rules import (
    dead_reason,
    heartbeat_streak,
    invalid_state,
    retry_event,
    sample_of,
    silent_trainer,
    traceback_event,
)
from core.memory import MAX_ANNOUNCED, Memory, Sample
from core.protocol import ProbeSnapshot, SupervisorState
from core.soft_rules import SOFT_RULES, gpu_recovering, keeps_alert_mode, remember_low_gpu
from core.soft_rules import suspect as soft_suspect
from core.soft_rules import unjudged as soft_unjudged
from core.throughput import recovering, remember_throughput
from core.vocab import Condition, Event, RunStatus

__all__ = [
    "ERROR_MARKERS",
    "Assessment",
    "Finding",
    "Health",
    "Observation",
    "Policy",
    "Thresholds",
    "assess",
    "next_check_s",
]


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
class Assessment:
    health: Health
    findings: tuple[Finding, ...]
    memory: Memory
    state: SupervisorState | None
    kill_attempt: int | None = None
    new_attempt: bool = False
    # conditions this check could not judge (no reading): an open alert for them stays open
    unjudged: frozenset[str] = frozenset()
    # a soft signal seen once, or an open slow alert's recovery: check again within the hold
    # instead of at the next cruise tick
    suspect: bool = False
    # when a verdict could next change: a silent trainer's stall or hang, a low-GPU onset's
    recheck_s: float | None = None

    @property
    def conditions(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.event)

    @property
    def events(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.event)


ERROR_HOLD_S = 60.0
ERROR_REASON = "error marker in the log (quoted below)"
UNREACHABLE_RECHECK_S = 150.0


def assess(
    memory: Memory, obs: Observation, policy: Policy, now: datetime, *, alerting: bool = False
) -> Assessment:
    """Judge one check. Pure: no I/O, no clock but `now`. `alerting`: a lasting condition found
    outside these rules (the deadline, the provider's word: core/decide.py) keeps alert mode."""
    t = policy.thresholds
    if obs.probe is None:
        return _assess_unreachable(memory, obs, policy, now, alerting)
    probe = obs.probe
    state = probe.state
    if memory.unreachable_streak:  # replace() only for a change: it runs at every check
        memory = replace(memory, unreachable_streak=0)
    if state is None:
        finding = invalid_state(memory, probe, t, now)
        sample = Sample(at=probe.at, reachable=True)
        found = (finding,) if finding else ()
        return _finish(memory.with_sample(sample), found, policy, None, alerting=alerting)

    sample = sample_of(state, probe, memory, t)
    previous = memory.samples
    memory = memory.with_sample(sample)
    if state.status.terminal:
        event = Finding(
            Event.TERMINAL.key(state.status.value), f"run {state.status.value}", event=True
        )
        return _finish(memory, (event,), policy, state, terminal=True, alerting=alerting)
    return _assess_live(memory, previous, sample, probe, state, policy, alerting, now)


def _assess_live(
    memory: Memory,
    previous: tuple[Sample, ...],
    sample: Sample,
    probe: ProbeSnapshot,
    state: SupervisorState,
    policy: Policy,
    alerting: bool,
    now: datetime,
) -> Assessment:
    """The rules of a live run (not terminal), its sample already in `memory`."""
    t = policy.thresholds
    findings: list[Finding] = []
    # Attempt 2+ at the very first check is a retry too (a missing module fails in seconds).
    new_attempt = state.attempt > max(memory.attempt_seen, 1)
    if new_attempt:
        findings.append(retry_event(state))
    if state.attempt > memory.attempt_seen:
        memory = replace(memory, attempt_seen=state.attempt, attempt_seen_at=probe.at)
    memory, stale = heartbeat_streak(memory, state, probe, t)
    if stale and memory.heartbeat_stale_streak >= t.stale_checks:
        findings.append(Finding(Condition.SUPERVISOR_DEAD, dead_reason(state, probe)))
    silent = silent_trainer(memory, previous, probe, state, t)
    memory = silent.memory
    findings.extend(silent.findings)
    # a failed attempt the supervisor is retrying is reported once, as the retry
    dying = new_attempt or state.status is RunStatus.RETRYING
    memory, told, error_recheck_s = _error_episode(
        memory, traceback_event(probe, state), now, dying, t
    )
    if told:
        findings.append(told)
    if not silent.stall and not stale and not silent.hang:
        for rule in SOFT_RULES:
            soft = rule(state, probe, previous, sample, memory, t)
            if soft:
                findings.append(soft)
    unjudged = soft_unjudged(state, sample, memory)
    suspect = soft_suspect(state, sample, memory, t) and not any(f.soft for f in findings)
    onset_s = onset_recheck_s(state, sample, memory, t)
    memory = remember_throughput(memory, previous, sample, tuple(findings), state, t)
    memory = remember_low_gpu(memory, tuple(findings), sample)
    suspect = suspect or recovering(sample, memory, t) or gpu_recovering(sample, memory, t)
    found, kill = tuple(findings), silent.kill
    assessment = _finish(
        memory, found, policy, state, kill=kill, new_attempt=new_attempt, alerting=alerting
    )
    rechecks = [r for r in (silent.silence.recheck_s, error_recheck_s, onset_s) if r is not None]
    recheck_s = min(rechecks) if rechecks else None
    return replace(assessment, unjudged=unjudged, suspect=suspect, recheck_s=recheck_s)


def error_hold_s(t: Thresholds) -> float:
    """How long an error marker in a live attempt waits to see whether the attempt dies of it
    (a dying trainer's supervisor says `retrying` within seconds)."""
    return min(ERROR_HOLD_S, t.heartbeat_stale_s)


def _error_episode(
    memory: Memory, fresh: Finding | None, at: datetime, dying: bool, t: Thresholds
) -> tuple[Memory, Finding | None, float | None]:
    """One message per episode: an error marker seen while the attempt still runs is held.
    If the attempt dies of it, the retry's message (or the end's) tells it, with the excerpt;
    if the trainer is still running `error_hold_s` later, it is told as an error in the log.
    Returns the memory, the event to tell now, and when to look again."""
    if dying:
        return _cleared(memory), None, None
    if memory.held_error_key is None or memory.held_error_at is None:
        if fresh is None or fresh.key in memory.announced:
            return memory, None, None
        held = replace(
            memory, held_error_key=fresh.key, held_error_quote=fresh.quote, held_error_at=at
        )
        return held, None, error_hold_s(t)
    waited_s = (at - memory.held_error_at).total_seconds()
    if waited_s < error_hold_s(t):
        return memory, None, error_hold_s(t) - waited_s
    told = Finding(memory.held_error_key, ERROR_REASON, event=True, quote=memory.held_error_quote)
    return _cleared(memory), told, None


def _cleared(memory: Memory) -> Memory:
    held = (memory.held_error_key, memory.held_error_quote, memory.held_error_at)
    if held == (None, None, None):
        return memory
    return replace(memory, held_error_key=None, held_error_quote=None, held_error_at=None)


def _finish(
    memory: Memory,
    findings: tuple[Finding, ...],
    policy: Policy,
    state: SupervisorState | None,
    *,
    terminal: bool = False,
    kill: int | None = None,
    new_attempt: bool = False,
    alerting: bool = False,
) -> Assessment:
    if any(f.key == Condition.UNREACHABLE for f in findings) or terminal:
        findings = tuple(f for f in findings if not f.soft)
    # an event (a retry, a traceback in an attempt, a stall kill) is announced once per key
    fresh = tuple(f for f in findings if f.event and f.key not in memory.announced)
    findings = tuple(f for f in findings if not f.event or f in fresh)
    if fresh:
        announced = (*memory.announced, *(f.key for f in fresh))[-MAX_ANNOUNCED:]
        memory = replace(memory, announced=announced)
    lasting = alerting or any(keeps_alert_mode(f, memory) for f in findings)
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


def _assess_unreachable(
    memory: Memory, obs: Observation, policy: Policy, now: datetime, alerting: bool
) -> Assessment:
    t = policy.thresholds
    streak = memory.unreachable_streak + 1
    memory = replace(memory, unreachable_streak=streak).with_sample(Sample(at=now, reachable=False))
    if obs.host_key_changed:
        reason = f"host key changed: {obs.error or 'refusing to connect'}; checks stopped"
        found = (Finding(Condition.HOST_KEY, reason),)
        return _finish(memory, found, policy, None, alerting=alerting)
    first = _first_failure(memory, now)
    lasted = (now - first).total_seconds()
    findings: tuple[Finding, ...] = ()
    if streak >= t.unreachable_checks and lasted >= t.unreachable_after_s:
        reason = (
            f"unreachable for {streak} checks in a row ({lasted / 60:.0f} min): "
            f"{obs.error or 'no answer'}"
        )
        findings = (Finding(Condition.UNREACHABLE, reason),)
    # a lost instance and a network blip look alike at first: look again soon, not in 30 min
    # (often enough to see it come back between two blips)
    recheck = None if findings else UNREACHABLE_RECHECK_S
    return replace(_finish(memory, findings, policy, None, alerting=alerting), recheck_s=recheck)


def _first_failure(memory: Memory, now: datetime) -> datetime:
    """When this run of failed checks began (as far back as the kept samples tell)."""
    first = now
    for sample in reversed(memory.samples):
        if sample.reachable:
            break
        first = sample.at
    return first


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
    if interval is not None and assessment.recheck_s is not None:
        # a silent trainer is judged again when its verdict can change (a stall, a hang),
        # not at the next 30-minute tick: the wait channel wakes once per silence only
        interval = min(interval, max(policy.cadence.min_interval_s, assessment.recheck_s))
    return interval
