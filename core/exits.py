"""Side effects that end or restart an attempt, each claimed in the store so it happens once:
stall recovery (`ctl kill-attempt`), the terminal summary, teardown by policy."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from core.config import Config
from core.errors import TransportError
from core.messages import log_context, summary_pairs, terminal_message
from core.models import MessageKind, OutboundMessage, RunRecord
from core.ports import Clock, Provider, Transport
from core.protocol import ProbeSnapshot, SupervisorState
from core.statusline import status_line
from core.store import Store
from core.teardown import destroy_verified, teardown_message

log = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "stopped"})
LOST = "instance lost"
REQUESTED = "teardown requested"
RETRY_TEARDOWN_S = 600.0
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DestroyOutcome:
    line: str  # the summary's "instance" line
    retry: bool  # the destroy failed: the instance is still billing, try again later
    record: RunRecord  # the run as stored after it


def should_destroy(status: str, *, destroy_on_done: bool, destroy_on_fail: bool) -> bool:
    """Pure teardown policy: done → destroy_on_done; failed or stopped → destroy_on_fail."""
    if status == "done":
        return destroy_on_done
    return status in TERMINAL and destroy_on_fail


class ExitHandler:
    def __init__(
        self,
        store: Store,
        config: Config,
        transport_for: Callable[[RunRecord], Transport],
        provider: Provider | None,
        clock: Clock,
        wake_outbox: Callable[[], None],
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.config = config
        self.transport_for = transport_for
        self.provider = provider
        self.clock = clock
        self.wake_outbox = wake_outbox
        self.sleep = sleep

    async def ctl(self, record: RunRecord, command: str) -> tuple[bool, str]:
        argv = self.config.supervisor_argv(
            record.name, ["ctl", "--run-dir", record.run_dir, command]
        )
        try:
            result = await self.transport_for(record).run(
                argv, timeout_s=self.config.ssh.exec_timeout
            )
        except TransportError as exc:
            return False, str(exc)
        try:
            doc = json.loads(result.stdout)
            return bool(doc.get("ok")), str(doc.get("message", ""))
        except (ValueError, AttributeError):
            return False, f"ctl exited {result.exit_status}"

    async def kill_attempt(self, record: RunRecord, attempt: int) -> None:
        key = f"kill:{attempt}"
        if not await self.store.claim_action(record.name, key, self.clock()):
            return  # never twice for the same attempt, restarts included
        ok, message = await self.ctl(record, "kill-attempt")
        await self.store.finish_action(
            record.name, key, f"{'ok' if ok else 'failed'}: {message}", self.clock()
        )

    async def finish(
        self,
        record: RunRecord,
        state: SupervisorState | None,
        probe: ProbeSnapshot | None,
    ) -> float | None:
        """Terminal state: teardown by policy, then one terminal message, then stop watching.
        Safe to repeat after a crash at any point. Returns a retry interval while a destroy
        keeps failing (the instance is still billing), else None."""
        now = self.clock()
        pending_key = f"terminal:{record.name}"
        if state is not None:
            summary = summary_pairs(
                state,
                probe.tail if probe else (),
                dph_total=record.dph_total,
                launched_at=record.launched_at,
                now=now,
                instance="(pending)",
            )
            line = record.last_status_line or status_line(now=now, run=record.name, state=state)
            message = terminal_message(record.name, line, state, summary, log_context(probe, state))
            await self.store.set_meta(pending_key, json.dumps(message.to_json()))
            record = replace(record, status=state.status.value, ended_at=state.ended_at or now)
            await self.store.save_run(record)
        outcome = await self._teardown_by_policy(record)
        record = outcome.record
        stored = await self.store.get_meta(pending_key)
        final = _with_instance_line(stored, record, outcome.line)
        await self.store.enqueue(final, dedupe_key=f"{record.name}:terminal", at=now)
        self.wake_outbox()
        if outcome.retry:
            await self.store.save_run(
                replace(record, next_check_at=now + timedelta(seconds=RETRY_TEARDOWN_S))
            )
            return RETRY_TEARDOWN_S
        await self.store.save_run(replace(record, live=False, next_check_at=None))
        return None

    async def teardown_live(self, record: RunRecord, reason: str) -> tuple[str, float | None]:
        """Tear down a run that is not terminal (deadline, lost instance, /teardown). Returns
        what happened and, while the destroy keeps failing, when to try again (the run stays
        live and its next check retries the destroy)."""
        now = self.clock()
        if record.instance_id is None:
            ok, message = await self.ctl(record, "stop")
            if not ok:  # the trainer may run on: keep watching and try again
                retry_at = now + timedelta(seconds=RETRY_TEARDOWN_S)
                await self.store.save_run(replace(record, next_check_at=retry_at))
                return f"{reason}: supervisor stop FAILED ({message}); retrying", RETRY_TEARDOWN_S
            await self.store.save_run(replace(record, live=False, ended_at=now, next_check_at=None))
            return f"{reason}: no cloud instance; supervisor stopped: {message}", None
        if reason != LOST:
            await self.ctl(record, "stop")
        outcome = await self._destroy(record, reason, announce=reason != REQUESTED)
        record = replace(outcome.record, ended_at=record.ended_at or now)
        if outcome.retry:
            retry_at = now + timedelta(seconds=RETRY_TEARDOWN_S)
            await self.store.save_run(replace(record, next_check_at=retry_at))
            return outcome.line, RETRY_TEARDOWN_S
        await self.store.save_run(replace(record, live=False, next_check_at=None))
        return outcome.line, None

    async def _teardown_by_policy(self, record: RunRecord) -> DestroyOutcome:
        if record.instance_id is not None and record.teardown in ("pending", "failed"):
            # a teardown already started (policy, deadline, lost instance): finish it
            return await self._destroy(record, "retrying the teardown", announce=True)
        run = next((r for r in self.config.runs if r.name == record.name), None)
        on_done = run.destroy_on_done if run else True
        on_fail = run.destroy_on_fail if run else True
        wanted = should_destroy(record.status, destroy_on_done=on_done, destroy_on_fail=on_fail)
        policy = f"destroy_on_done={str(on_done).lower()}, destroy_on_fail={str(on_fail).lower()}"
        if not wanted:
            return DestroyOutcome(
                f"kept running by policy ({policy}): still billing", False, record
            )
        if record.instance_id is None:
            line = f"no cloud instance (local run); the policy would destroy it ({policy})"
            return DestroyOutcome(line, False, record)
        return await self._destroy(record, f"run {record.status}", announce=False)

    async def _destroy(self, record: RunRecord, reason: str, *, announce: bool) -> DestroyOutcome:
        """Destroy verified, at most once per run. `announce`: also send a message when it is
        gone (the terminal message says it otherwise)."""
        instance_id = record.instance_id
        assert instance_id is not None
        done = await self.store.action_result(record.name, "teardown") == "destroyed"
        if done or record.teardown == "destroyed":
            return DestroyOutcome(f"{instance_id} destroyed", False, record)
        retried = record.teardown == "failed"
        await self.store.claim_action(record.name, "teardown", self.clock())
        record = replace(record, teardown="pending")
        await self.store.save_run(record)
        if self.provider is None:
            line = f"{instance_id}: no provider configured (VAST_API_KEY), NOT destroyed"
            return DestroyOutcome(line, False, replace(record, teardown="failed"))
        result = await destroy_verified(self.provider, instance_id, sleep=self.sleep)
        now = self.clock()
        state = "destroyed" if result.destroyed else "failed"
        await self.store.finish_action(record.name, "teardown", state, now)
        record = replace(record, teardown=state, torn_down_at=now if result.destroyed else None)
        await self.store.save_run(record)
        message = teardown_message(record.name, instance_id, result)
        if not result.destroyed:
            hour = now.strftime("%Y%m%d%H")
            await self.store.enqueue(message, dedupe_key=f"{record.name}:billing:{hour}", at=now)
            self.wake_outbox()
            line = f"{instance_id} NOT destroyed ({result.last_error}): still billing"
            return DestroyOutcome(line, True, record)
        if announce or retried:
            await self.store.enqueue(message, dedupe_key=f"{record.name}:destroyed", at=now)
            self.wake_outbox()
        log.info("%s: instance %s destroyed (%s)", record.name, instance_id, reason)
        return DestroyOutcome(f"{instance_id} destroyed ({reason})", False, record)


def _with_instance_line(
    stored: str | None, record: RunRecord, instance_line: str
) -> OutboundMessage:
    if stored is None:
        return OutboundMessage(
            kind=MessageKind.TERMINAL,
            title=f"{record.name}: {record.status}",
            run=record.name,
            status_line=record.last_status_line,
            summary=(("instance", instance_line),),
        )
    message = OutboundMessage.from_json(json.loads(stored))
    summary = tuple((k, instance_line if k == "instance" else v) for k, v in message.summary)
    return replace(message, summary=summary)
