"""`decide`: one check's whole decision, from data and `now` alone (kopf's decide-then-apply).

Called by core/watcher.py (`Watcher._check`: observe → decide → commit → act) and by
bench/detection_sim.py, so the bench measures the watcher's own decision. In: the run's row,
what the check observed (the probe, or the transport's error), the provider's word on an
instance SSH could not reach, the run's open alerts, the policy. Out: a `CheckDecision`, what to
commit in one transaction (the run row, the status line, alerts opened/re-sent/closed, outbound
messages) and what to do after the commit (kill the attempt, finish the run, tear it down,
stop watching), plus when to check next. No I/O, no clock, no logging: tests/test_layering.py
holds it to that. The rules themselves live in core/rules.py (assess), core/outside.py (the
provider, the deadline, max_cost, low disk) and core/transitions.py (the alert diff); this
module only composes them, once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from core.memory import MAX_ANNOUNCED, Memory, Stored, stored
from core.messages import alert_message, episode_findings, log_context, recovery_message
from core.models import CheckCommit, OpenAlert, OutboundMessage, RunRecord
from core.outside import CheckPolicy, Outside, ProviderAnswer, judge_outside
from core.protocol import SupervisorState
from core.rules import Assessment, Finding, Health, Observation, Policy, assess, next_check_s
from core.slowdown_cost import deadline_gate
from core.statusline import status_line
from core.throughput import past_due
from core.topics import RunFacts
from core.transitions import AlertPlan, plan_alerts
from core.vocab import Condition, Event, WatchStatus, event_of

__all__ = ["CheckDecision", "CheckPolicy", "ProviderAnswer", "decide", "memory_of"]


@dataclass(frozen=True, slots=True)
class CheckDecision:
    """What one check decided. `commit` is written first, in one transaction; then, in this
    order: `stop` (host key changed: nothing else), `kill_attempt`, `finish` (terminal state:
    acknowledge the end, then the exit), `teardown` (a live run's ending reason)."""

    commit: CheckCommit
    interval_s: float | None  # the next check; None: no more checks by cadence
    alerts: AlertPlan
    assessment: Assessment
    stored: Stored  # the memory committed, and its document: the run's next `known`
    told: tuple[Finding, ...] = ()  # what the alert message says (one message per episode)
    kill_attempt: int | None = None
    finish: SupervisorState | None = None
    teardown: str | None = None
    stop: bool = False

    @property
    def record(self) -> RunRecord:
        return self.commit.run

    @property
    def status_line(self) -> str:
        return self.commit.status_line


def decide(
    record: RunRecord,
    obs: Observation,
    instance: ProviderAnswer | None,
    open_alerts: Mapping[str, OpenAlert],
    policy: CheckPolicy,
    now: datetime,
    known: Stored | None = None,
) -> CheckDecision:
    """Decide one check of a live run. `instance` is None when the provider was not asked
    (SSH answered, no provider, no instance). `known`: the memory this run's last check stored
    (CheckDecision.stored), if the caller kept it: the same decision, less decoding."""
    memory = memory_of(record, known)
    outside = judge_outside(record, obs, instance, memory, policy, open_alerts, now)
    rules = _deadline_rules(policy.rules, obs, memory, outside.due_at, now)
    a = _merge(assess(memory, obs, rules, now, alerting=outside.lasting), outside)
    a = _slow_past_due(a, record, outside.due_at, policy, now)
    line = _status_line(record, obs, a)
    terminal = a.health is Health.TERMINAL
    plan = plan_alerts(
        open_alerts,
        [f for f in a.findings if event_of(f.key) is not Event.TERMINAL],
        now,
        resend_after_s=policy.rules.thresholds.resend_after_s,
        muted_until=record.muted_until,
        terminal=terminal,
        observed=a.state is not None,
        unjudged=a.unjudged,
    )
    interval = next_check_s(a, policy.rules, now, deadline_at=outside.due_at)
    stop = any(f.key == Condition.HOST_KEY for f in a.findings)
    kept = stored(a.memory, known)
    updated = _updated_record(record, obs, a, kept.doc, line, interval, stop=stop)
    # one message per episode: the retry a stall kill caused was told by the kill's message
    told = episode_findings(plan.to_notify, a.state, memory.stall_kills)
    messages = _messages(record, told, line, obs, a, plan, now, policy.max_cost is not None)
    return CheckDecision(
        commit=_commit(updated, line, a, plan, messages, now),
        interval_s=None if stop else interval,
        alerts=plan,
        assessment=a,
        stored=kept,
        told=told,
        kill_attempt=None if stop else a.kill_attempt,
        finish=a.state if terminal else None,
        teardown=None if stop or terminal else outside.teardown,
        stop=stop,
    )


def memory_of(record: RunRecord, known: Stored | None = None) -> Memory:
    if record.memory:
        return known.decode(record.memory) if known else Memory.from_json(record.memory)
    return Memory(launched_at=record.launched_at)


def _merge(a: Assessment, outside: Outside) -> Assessment:
    """The outside findings join assess's (its cadence already counted them: `alerting`)."""
    announced = (*a.memory.announced, *(f.key for f in outside.findings if f.event))
    memory = replace(
        a.memory,
        deadline_warned_for=outside.warned_for,
        instance_gone_checks=outside.gone_checks,
        cost_warned_for=outside.cost_warned_for,
        announced=announced[-MAX_ANNOUNCED:],
    )
    health = Health.ALERT if outside.findings and a.health is Health.OK else a.health
    findings = (*a.findings, *outside.findings)
    unjudged = a.unjudged | outside.unjudged
    return replace(a, findings=findings, memory=memory, health=health, unjudged=unjudged)


def _deadline_rules(
    rules: Policy, obs: Observation, memory: Memory, due_at: datetime | None, now: datetime
) -> Policy:
    """The rules, the slowdown's cost gate waived if this rate makes the run miss `due_at`."""
    state = obs.probe.state if obs.probe else None
    gate = deadline_gate(rules.thresholds, state, memory.baseline_throughput, due_at, now)
    return rules if gate is rules.thresholds else replace(rules, thresholds=gate)


def _slow_past_due(
    a: Assessment, record: RunRecord, due_at: datetime | None, policy: CheckPolicy, now: datetime
) -> Assessment:
    """A slow run that would end after its deadline or cost cap stops it says so."""
    if due_at is None or not a.memory.samples:
        return a
    what = "deadline" if due_at == record.deadline_at else "max_cost"
    sample = a.memory.samples[-1]
    found = tuple(past_due(f, sample, due_at, what, now, policy.tz) for f in a.findings)
    return replace(a, findings=found)


def _status_line(record: RunRecord, obs: Observation, a: Assessment) -> str:
    probe = obs.probe
    if probe is None:
        return status_line(now=obs.at, run=record.name, state=None, status=WatchStatus.UNREACHABLE)
    override = None if a.state is not None else WatchStatus.INVALID
    return status_line(now=obs.at, run=record.name, state=a.state, gpus=probe.gpus, status=override)


def _messages(
    record: RunRecord,
    told: tuple[Finding, ...],
    line: str,
    obs: Observation,
    a: Assessment,
    plan: AlertPlan,
    now: datetime,
    capped: bool,
) -> tuple[tuple[str, OutboundMessage], ...]:
    """The alert (one message for what is `told`) and the recovery, with their dedupe keys.
    A terminal state closes alerts silently: its own message says what matters."""
    name = record.name
    messages: list[tuple[str, OutboundMessage]] = []
    if told:
        context = log_context(obs.probe, a.state, retry=a.new_attempt)
        facts = RunFacts(
            live=a.health is not Health.TERMINAL,
            has_instance=record.instance_id is not None,
            extendable=record.deadline_at is not None or capped,  # /extend moves both
        )
        alert = alert_message(name, line, told, context, state=a.state, facts=facts)
        messages.append((f"{name}:alert:{now.isoformat()}", alert))
    if plan.recovered and a.health is not Health.TERMINAL:
        recovery = recovery_message(name, line, plan.recovered)
        messages.append((f"{name}:recovered:{now.isoformat()}", recovery))
    return tuple(messages)


def _commit(
    updated: RunRecord,
    line: str,
    a: Assessment,
    plan: AlertPlan,
    messages: tuple[tuple[str, OutboundMessage], ...],
    now: datetime,
) -> CheckCommit:
    """Everything the check writes, in one transaction (see CheckCommit)."""
    return CheckCommit(
        run=updated,
        at=now,
        status_line=line,
        health=a.health.value,
        reasons=tuple(f.reason for f in a.findings),
        alerts_opened=tuple(_open(updated.name, f, now) for f in plan.opened),
        alerts_resent=tuple(f.key for f in plan.resent),
        alerts_resolved=plan.resolved,
        messages=messages,
    )


def _updated_record(
    record: RunRecord,
    obs: Observation,
    a: Assessment,
    memory_doc: dict[str, Any],
    line: str,
    interval: float | None,
    *,
    stop: bool,
) -> RunRecord:
    """The run row after the check; `stop` (the host key changed): watched no more."""
    at = obs.at
    fields: dict[str, object] = {
        "memory": memory_doc,
        "last_status_line": line,
        "last_check_at": at,
        "interval_s": interval,
        "next_check_at": at + timedelta(seconds=interval) if interval is not None else None,
    }
    state = a.state
    if state is not None:
        fields.update(
            status=state.status.value, attempt=state.attempt, max_attempts=state.max_attempts
        )
    elif obs.probe is None:
        fields["status"] = WatchStatus.UNREACHABLE.value
    if obs.probe is not None and obs.probe.log is not None:
        fields.update(log_attempt=obs.probe.log.attempt, log_offset=obs.probe.log.next_offset)
    if stop:
        fields.update(live=False, status=WatchStatus.HOST_KEY_CHANGED.value, next_check_at=None)
    return replace(record, **fields)  # type: ignore[arg-type]


def _open(run: str, finding: Finding, now: datetime) -> OpenAlert:
    return OpenAlert(
        run=run, condition=finding.key, opened_at=now, last_sent_at=now, message=finding.reason
    )
