"""Side effects that end or restart an attempt, each claimed in the store so it happens once:
stall recovery (`ctl kill-attempt`), the terminal summary, teardown by policy."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from core.config import Config
from core.errors import TransportError
from core.messages import log_context, summary_pairs, terminal_message
from core.models import MessageKind, OutboundMessage, RunRecord
from core.ports import Clock, Provider, Transport
from core.protocol import ProbeSnapshot, SupervisorState
from core.ssh import remote_argv
from core.statusline import status_line
from core.store import Store
from core.teardown import destroy_verified, teardown_message

log = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "stopped"})
RETRY_TEARDOWN_S = 600.0
Sleep = Callable[[float], Awaitable[None]]


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
        argv = remote_argv(
            self.config.watcher.python,
            self.config.remote_root(record.name),
            ["ctl", "--run-dir", record.run_dir, command],
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
            await self.store.upsert_run(record)
        instance_line, retry = await self._teardown_by_policy(record)
        stored = await self.store.get_meta(pending_key)
        final = _with_instance_line(stored, record, instance_line)
        await self.store.enqueue(final, dedupe_key=f"{record.name}:terminal", at=now)
        self.wake_outbox()
        if retry:
            await self.store.upsert_run(
                replace(record, next_check_at=now + timedelta(seconds=RETRY_TEARDOWN_S))
            )
            return RETRY_TEARDOWN_S
        await self.store.upsert_run(replace(record, live=False, next_check_at=None))
        return None

    async def teardown_live(self, record: RunRecord, reason: str) -> str:
        """Tear down a run that is not terminal (deadline, lost instance, /teardown)."""
        if record.instance_id is None:
            ok, message = await self.ctl(record, "stop")
            text = f"{reason}: no cloud instance; supervisor stop: {message or ok}"
        else:
            if reason != "instance lost":
                await self.ctl(record, "stop")
            text, _ = await self._destroy(record, reason)
        await self.store.upsert_run(
            replace(record, live=False, ended_at=self.clock(), next_check_at=None)
        )
        return text

    async def _teardown_by_policy(self, record: RunRecord) -> tuple[str, bool]:
        run = next((r for r in self.config.runs if r.name == record.name), None)
        on_done = run.destroy_on_done if run else True
        on_fail = run.destroy_on_fail if run else True
        wanted = should_destroy(record.status, destroy_on_done=on_done, destroy_on_fail=on_fail)
        policy = f"destroy_on_done={str(on_done).lower()}, destroy_on_fail={str(on_fail).lower()}"
        if not wanted:
            return f"kept running by policy ({policy}): still billing", False
        if record.instance_id is None:
            return f"no cloud instance (local run); the policy would destroy it ({policy})", False
        return await self._destroy(record, f"run {record.status}")

    async def _destroy(self, record: RunRecord, reason: str) -> tuple[str, bool]:
        """(instance line, keep retrying?). Destroy verified at most once per run."""
        instance_id = record.instance_id
        assert instance_id is not None
        if await self.store.action_result(record.name, "teardown") == "destroyed":
            return f"{instance_id} destroyed", False
        await self.store.claim_action(record.name, "teardown", self.clock())
        if self.provider is None:
            return f"{instance_id}: no provider configured, NOT destroyed — still billing", False
        result = await destroy_verified(self.provider, instance_id, sleep=self.sleep)
        now = self.clock()
        outcome = "destroyed" if result.destroyed else "failed"
        await self.store.finish_action(record.name, "teardown", outcome, now)
        await self.store.upsert_run(
            replace(record, teardown=outcome, torn_down_at=now if result.destroyed else None)
        )
        message = teardown_message(record.name, instance_id, result)
        if not result.destroyed or message.kind is MessageKind.ALERT:
            hour = now.strftime("%Y%m%d%H")
            await self.store.enqueue(message, dedupe_key=f"{record.name}:billing:{hour}", at=now)
            return f"{instance_id} NOT destroyed ({result.last_error}): still billing", True
        log.info("%s: instance %s destroyed (%s)", record.name, instance_id, reason)
        return f"{instance_id} destroyed ({reason})", False


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
