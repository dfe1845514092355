"""`Watcher.check(run)`: the unit of work. One probe (read through core/supervisor_client.py) →
pure assessment → one status line → one atomic store commit (check row, alerts, outbox) → side
effects claimed at most once → the seconds until the next check (None: stop watching it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from core.cadence import advance
from core.config import Config, RunConfig
from core.deadline import judge_deadline
from core.errors import HostKeyMismatch, ProtocolError, SleepwatchError, StaleRun, TransportError
from core.exits import DEADLINE, LOST, ExitHandler
from core.memory import Memory
from core.messages import alert_message, log_context, recovery_message
from core.models import CheckCommit, OpenAlert, OutboundMessage, RunRecord
from core.ports import Clock, Provider, Transport
from core.protocol import ProbeSnapshot, SupervisorState
from core.rules import Assessment, Finding, Health, Observation, Policy, assess, next_check_s
from core.statusline import status_line
from core.store import Store
from core.supervisor_client import SupervisorClient, SupervisorExited, client_for
from core.transitions import plan_alerts
from core.vocab import Condition, Event, WatchStatus, event_of

log = logging.getLogger(__name__)
# Pauses between tries of the end's ack (then it gives up: the teardown still ends the billing).
ACK_RETRY_DELAYS_S = (2.0, 10.0)

TransportFor = Callable[[RunRecord], Transport]


class Watcher:
    def __init__(
        self,
        store: Store,
        config: Config,
        transport_for: TransportFor,
        provider: Provider | None,
        clock: Clock,
        *,
        emit: Callable[[str], None] = print,
        wake_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.config = config
        self.transport_for = transport_for
        self.provider = provider
        self.clock = clock
        self.emit = emit
        self.wake_outbox = wake_outbox
        self.exits = ExitHandler(store, config, transport_for, provider, clock, wake_outbox)
        self._locks: dict[str, asyncio.Lock] = {}

    def run_config(self, name: str) -> RunConfig | None:
        return self.config.find_run(name)

    def policy(self, name: str) -> Policy:
        run = self.run_config(name)
        return self.config.policy_for(run) if run else Policy()

    def lock(self, name: str) -> asyncio.Lock:
        """One lock per run: a check, an exit and a human's /teardown never interleave their
        read-modify-write of the run (a check that read the row first would undo the other)."""
        return self._locks.setdefault(name, asyncio.Lock())

    async def check(self, name: str) -> float | None:
        """Check one run now. Returns seconds until the next check, or None when done with it."""
        async with self.lock(name):
            return await self._check(name)

    async def _check(self, name: str) -> float | None:
        now = self.clock()
        record = await self.store.get_run(name)
        if record is None or not record.live:
            return None
        if record.ended_at is not None:  # terminal seen; exit handling interrupted or retrying
            return await self.exits.finish(record, None, None)
        policy = self.policy(name)
        obs = await self._observe(record)
        now = obs.at  # judged as of the answer: a check may wait for its channel
        memory = _memory_of(record)
        assessment = assess(memory, obs, policy, now)
        instance_finding, gone_checks = await self._ask_provider(record, obs, memory)
        deadline = judge_deadline(
            # an ended run has no deadline left: no "deadline soon" beside its terminal message
            None if assessment.health is Health.TERMINAL else record.deadline_at,
            now,
            warned=record.deadline_at is not None
            and assessment.memory.deadline_warned_for == record.deadline_at,
            grace_s=self._grace_s(name),
        )
        extra = [*([instance_finding] if instance_finding else []), *deadline.findings]
        warned_for = record.deadline_at if deadline.warned else None
        assessment = _with_extra(assessment, extra, policy, warned_for, gone_checks)
        findings = list(assessment.findings)

        line = self._status_line(record, obs, assessment)
        terminal = assessment.health is Health.TERMINAL
        open_alerts = await self.store.open_alerts(name)
        plan = plan_alerts(
            open_alerts,
            [f for f in findings if event_of(f.key) is not Event.TERMINAL],
            now,
            resend_after_s=policy.thresholds.resend_after_s,
            muted_until=record.muted_until,
            terminal=terminal,
            observed=assessment.state is not None,
            unjudged=assessment.unjudged,
        )
        messages: list[tuple[str, OutboundMessage]] = []
        if plan.to_notify:
            context = log_context(obs.probe, assessment.state, retry=assessment.new_attempt)
            alert = alert_message(name, line, plan.to_notify, context)
            messages.append((f"{name}:alert:{now.isoformat()}", alert))
        if plan.recovered and not terminal:
            messages.append(
                (
                    f"{name}:recovered:{now.isoformat()}",
                    recovery_message(name, line, plan.recovered),
                )
            )
        interval = next_check_s(assessment, policy, now, deadline_at=record.deadline_at)
        updated = self._updated_record(record, obs, assessment, line, interval)
        stop = any(f.key == Condition.HOST_KEY for f in findings)
        if stop:
            updated = replace(
                updated, live=False, status=WatchStatus.HOST_KEY_CHANGED.value, next_check_at=None
            )
        try:
            await self.store.commit_check(
                CheckCommit(
                    run=updated,
                    at=now,
                    status_line=line,
                    health=assessment.health.value,
                    reasons=tuple(f.reason for f in findings),
                    alerts_opened=tuple(_open(name, f, now) for f in plan.opened),
                    alerts_resent=tuple(f.key for f in plan.resent),
                    alerts_resolved=plan.resolved,
                    messages=tuple(messages),
                )
            )
        except StaleRun as exc:  # another shell ended or relaunched it: its write stands
            log.info("%s", exc)
            current = await self.store.get_run(name)
            return None if current is None or not current.live else 1.0
        self.emit(line)
        if messages:
            self.wake_outbox()
        if stop:
            return None
        if assessment.kill_attempt is not None:
            await self.exits.kill_attempt(updated, assessment.kill_attempt)
        if terminal and assessment.state is not None:
            await self.acknowledge_end(updated, assessment.state)
            return await self.exits.finish(updated, assessment.state, obs.probe)
        lost = instance_finding is not None and instance_finding.key == Condition.INSTANCE_LOST
        if deadline.teardown or (lost and self._destroy_on_fail(name)):
            reason = DEADLINE if deadline.teardown else LOST
            _, retry_s = await self.exits.teardown_live(updated, reason)
            return retry_s
        return interval

    def _destroy_on_fail(self, name: str) -> bool:
        run = self.run_config(name)
        return run.destroy_on_fail if run else True

    def client(self, record: RunRecord) -> SupervisorClient:
        return client_for(self.config, record.name, self.transport_for(record))

    async def _observe(self, record: RunRecord) -> Observation:
        """One probe, stamped when its answer came (not when it was asked: it may have queued
        for a channel, and a `done` line must not predate the trainer's exit)."""
        try:
            probe = await self.client(record).probe(
                record.run_dir,
                attempt=record.log_attempt,
                offset=record.log_offset,
                ack=self.config.watcher.watcher_id,  # "alive" only: the end needs `ack`
            )
        except HostKeyMismatch as exc:
            return Observation(at=self.clock(), error=str(exc), host_key_changed=True)
        except (TransportError, SupervisorExited) as exc:
            return Observation(at=self.clock(), error=str(exc))
        except ProtocolError as exc:
            now = self.clock()
            probe = ProbeSnapshot(probe=1, at=now, state_error=str(exc)[:1000])
        else:
            now = self.clock()
        return Observation(at=now, probe=probe)

    async def acknowledge_end(self, record: RunRecord, state: SupervisorState) -> None:
        """Phase two of the dead-man handshake, sent only after the terminal state is committed
        to the store: the supervisor disarms its switch only on an ack of its own end. A failed
        ack is retried a few times: with `destroy_on_* = false` an unacked end would let the
        switch destroy an instance the person meant to keep."""
        for delay_s in (*ACK_RETRY_DELAYS_S, None):
            try:
                answer = await self.client(record).ack(
                    record.run_dir,
                    watcher=self.config.watcher.watcher_id,
                    status=state.status.value,
                    attempt=state.attempt,
                    ended_at=state.ended_at,
                )
            except SleepwatchError as exc:
                log.warning("%s: could not acknowledge the end: %s", record.name, exc)
                if delay_s is not None:
                    await self.exits.sleep(delay_s)
                continue
            if not answer.matches:
                log.warning(
                    "%s: the supervisor did not match our ack: %s", record.name, answer.message
                )
            return

    async def _ask_provider(
        self, record: RunRecord, obs: Observation, memory: Memory
    ) -> tuple[Finding | None, int]:
        """The provider's word on an instance SSH cannot reach, and the gone/lost checks in a
        row so far (a reachable instance starts the count again)."""
        if obs.probe is not None or self.provider is None or record.instance_id is None:
            return None, 0
        from core.instance import instance_finding, read_instance

        info, error = await read_instance(self.provider, record.instance_id)
        verdict = instance_finding(
            record.instance_id, info, error, record.status, memory.instance_gone_checks
        )
        return verdict.finding, verdict.gone_checks

    def _grace_s(self, name: str) -> float:
        run = self.run_config(name)
        return run.deadline_grace if run else 900.0

    def _status_line(self, record: RunRecord, obs: Observation, a: Assessment) -> str:
        probe = obs.probe
        if probe is None:
            return status_line(
                now=obs.at, run=record.name, state=None, status=WatchStatus.UNREACHABLE
            )
        override = None if a.state is not None else WatchStatus.INVALID
        return status_line(
            now=obs.at, run=record.name, state=a.state, gpus=probe.gpus, status=override
        )

    def _updated_record(
        self,
        record: RunRecord,
        obs: Observation,
        a: Assessment,
        line: str,
        interval: float | None,
    ) -> RunRecord:
        at = obs.at
        fields: dict[str, object] = {
            "memory": a.memory.to_json(),
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
        return replace(record, **fields)  # type: ignore[arg-type]


def _with_extra(
    assessment: Assessment,
    extra: list[Finding],
    policy: Policy,
    warned_for: datetime | None,
    gone_checks: int = 0,
) -> Assessment:
    """Add the provider's and the deadline's findings, which assess cannot see: a lasting one
    puts the run in alert mode like any other alert, and so does a first "gone" answer from
    the provider (the second check that may confirm it comes at the alert cadence)."""
    memory = replace(
        assessment.memory, deadline_warned_for=warned_for, instance_gone_checks=gone_checks
    )
    health = assessment.health
    if extra and health is Health.OK:
        health = Health.ALERT
    lasting = any(not f.event for f in extra) or gone_checks > 0
    if lasting and health is not Health.TERMINAL:
        cadence = advance(
            memory.cadence, policy.cadence, alerting=True, terminal=False, new_attempt=False
        )
        memory = replace(memory, cadence=cadence)
    return replace(
        assessment, findings=(*assessment.findings, *extra), memory=memory, health=health
    )


def _memory_of(record: RunRecord) -> Memory:
    if record.memory:
        return Memory.from_json(record.memory)
    return Memory(launched_at=record.launched_at)


def _open(run: str, finding: Finding, now: datetime) -> OpenAlert:
    return OpenAlert(
        run=run, condition=finding.key, opened_at=now, last_sent_at=now, message=finding.reason
    )
