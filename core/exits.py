"""Side effects that end or restart an attempt, each claimed in the store so it happens once:
stall recovery (`ctl kill-attempt`), the terminal summary, teardown by policy."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from core.collect import Collector
from core.collect_report import uncollected_alert, uncollected_fate, with_outputs
from core.config import Config
from core.errors import ProtocolError, SleepwatchError, TransportError
from core.exit_plan import (
    COST,
    DEADLINE,
    ENDING_OUTCOMES,
    LOST,
    REQUESTED,
    RETRY_TEARDOWN_S,
    should_destroy,
)
from core.memory import Memory
from core.messages import (
    ending_message,
    ending_status_line,
    log_context,
    summary_pairs,
    terminal_message,
    with_instance_line,
)
from core.models import MessageKind, OutboundMessage, RunRecord
from core.outputs import Collected, CollectResult
from core.ports import Clock, ProviderFor, Transport
from core.protocol import ProbeSnapshot, SupervisorState
from core.run_chart import with_chart
from core.run_settings import settings_for
from core.statusline import status_line
from core.store import Store
from core.supervisor_client import client_for
from core.teardown import destroy_verified, stop_best_effort, teardown_message
from core.topics import Topic
from core.vocab import RunStatus, TeardownState, WatchStatus, pending_terminal_key

log = logging.getLogger(__name__)
__all__ = [
    "DEADLINE",
    "LOST",
    "REQUESTED",
    "RETRY_TEARDOWN_S",
    "DestroyOutcome",
    "ExitHandler",
    "should_destroy",
]

Sleep = Callable[[float], Awaitable[None]]
# Endings that stop a live run and then destroy its instance whatever destroy_on_* say; the
# outputs come off first (a lost instance has none to give, a human's /teardown was asked for).
COLLECT_FIRST = (DEADLINE, COST)
FORCED_BY_OUTCOME = {ENDING_OUTCOMES[reason]: reason for reason in COLLECT_FIRST}


@dataclass(frozen=True, slots=True)
class DestroyOutcome:
    line: str  # the summary's "instance" line
    retry: bool  # the destroy failed: the instance is still billing, try again later
    record: RunRecord  # the run as stored after it
    billing: bool = False  # kept by policy: it bills on and nobody else will say so


class ExitHandler:
    def __init__(
        self,
        store: Store,
        config: Config,
        transport_for: Callable[[RunRecord], Transport],
        provider_for: ProviderFor,
        clock: Clock,
        wake_outbox: Callable[[], None],
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.config = config
        self.transport_for = transport_for
        self.provider_for = provider_for
        self.clock = clock
        self.wake_outbox = wake_outbox
        self.sleep = sleep
        self.collector = Collector(store, config, transport_for, clock)

    async def ctl(self, record: RunRecord, command: str) -> tuple[bool, str]:
        client = client_for(self.config, record.name, self.transport_for(record))
        try:
            answer = await client.ctl(record.run_dir, command)
        except (TransportError, ProtocolError) as exc:
            return False, str(exc)
        return answer.ok, answer.message

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
        if state is not None:
            summary = summary_pairs(
                state,
                probe.tail if probe else (),
                dph_total=record.dph_total,
                launched_at=record.launched_at,
                now=now,
                instance="(pending)",
                stall_kills=Memory.from_json(record.memory).stall_kills if record.memory else (),
            )
            line = record.last_status_line or status_line(now=now, run=record.name, state=state)
            message = terminal_message(
                record.name,
                line,
                state,
                summary,
                log_context(probe, state),
                notify_done=self.config.telegram.notify_done,
            )
            message = await with_chart(message, self.config, record, self.transport_for(record))
            await self.store.set_meta(_pending_key(record), json.dumps(message.to_json()))
            outcome = state.outcome.value if state.outcome else state.status.value
            record = replace(
                record,
                status=state.status.value,
                outcome=outcome,
                ended_at=state.ended_at or now,
            )
            await self.store.save_run(record)
        if record.teardown is None:  # none started yet: the outputs come off first
            collected = await self.collector.collect(record)
            if not collected.settled:  # the run stays live: the next check goes on with it
                retry_s = collected.retry_s or RETRY_TEARDOWN_S
                await self.store.save_run(
                    replace(record, next_check_at=now + timedelta(seconds=retry_s))
                )
                return retry_s
            await self._note_outputs(record, collected.line)
            if collected.state is Collected.FAILED:
                return await self._conclude(await self._uncollected(record, collected), now)
        return await self._conclude(await self._teardown_by_policy(record), now)

    async def _note_outputs(self, record: RunRecord, line: str) -> None:
        stored = await self.store.get_meta(_pending_key(record))
        if stored is not None:
            message = with_outputs(OutboundMessage.from_json(json.loads(stored)), line)
            await self.store.set_meta(_pending_key(record), json.dumps(message.to_json()))

    async def _uncollected(self, record: RunRecord, collected: CollectResult) -> DestroyOutcome:
        """One alert saying what was and was not collected, then keep the instance or destroy
        it by `destroy_when_uncollected` (default: keep: nothing is lost that money can save)."""
        destroy, fate = uncollected_fate(
            record.name,
            record.instance_id,
            destroy=settings_for(self.config, record.name).destroy_when_uncollected,
            dph_total=record.dph_total,
        )
        now = self.clock()
        alert = uncollected_alert(record.name, collected, fate)
        await self.store.enqueue(alert, dedupe_key=f"{record.name}:uncollected", at=now)
        self.wake_outbox()
        if destroy or record.instance_id is None:
            return await self._teardown_by_policy(record)
        why = "outputs not all collected (destroy_when_uncollected = false)"
        line = f"{record.instance_id} KEPT: {why}: still billing"
        return DestroyOutcome(line, False, record)

    async def teardown_live(self, record: RunRecord, reason: str) -> tuple[str, float | None]:
        """Tear down a run that is not terminal (deadline, lost instance, /teardown): the run
        ends `stopped` with the reason as its outcome and one terminal message. Returns what
        happened and, while the destroy keeps failing, when to try again (the run stays live
        and its next check retries the destroy)."""
        now = self.clock()
        ended = record.ended_at is not None  # its terminal message is already written
        if record.instance_id is None:
            ok, message = await self.ctl(record, "stop")
            if not ok:  # the trainer may run on: keep watching and try again
                retry_at = now + timedelta(seconds=RETRY_TEARDOWN_S)
                await self.store.save_run(replace(record, next_check_at=retry_at))
                return f"{reason}: supervisor stop FAILED ({message}); retrying", RETRY_TEARDOWN_S
            if not ended:
                record = await self._begin_ending(record, reason, now)
            line = "no cloud instance (local run); supervisor stopped"
            await self._conclude(DestroyOutcome(line, False, record), now)
            return f"{reason}: no cloud instance; supervisor stopped: {message}", None
        if reason != LOST:  # best effort, bounded: the DELETE below always follows
            stopped, said = await stop_best_effort(self.ctl(record, "stop"))
            if not stopped:
                log.warning("%s: %s before the destroy: %s", record.name, reason, said[:200])
        if not ended:
            record = await self._begin_ending(record, reason, now)
        if reason in COLLECT_FIRST:  # the run is stopped: its outputs come off, then the destroy
            return f"{reason}: outputs first, then the destroy", await self.finish(
                record, None, None
            )
        outcome = await self._destroy(record, reason, announce=ended and reason != REQUESTED)
        return outcome.line, await self._conclude(outcome, now)

    async def _begin_ending(self, record: RunRecord, reason: str, now: datetime) -> RunRecord:
        """Write down how the run ends before tearing it down (a crash mid-DELETE resumes
        from here): its row says `stopped` with the reason, and its terminal message waits."""
        last_seen = await self._last_seen_line(record)
        line = ending_status_line(last_seen, record, now)
        message = ending_message(
            record,
            line,
            reason,
            launched_at=record.launched_at,
            now=now,
            requested=reason == REQUESTED,
        )
        await self.store.set_meta(_pending_key(record), json.dumps(message.to_json()))
        record = replace(
            record,
            status=RunStatus.STOPPED.value,
            outcome=ENDING_OUTCOMES.get(reason, RunStatus.STOPPED.value),
            ended_at=now,
            last_status_line=line,
        )
        await self.store.save_run(record)
        return record

    async def _last_seen_line(self, record: RunRecord) -> str | None:
        """The newest status line of a check that read the run's state (an unreachable one
        knows no step)."""
        for _, line, _ in await self.store.recent_checks(record.name, limit=50):
            if line.split(" ")[1:2] not in ([WatchStatus.UNREACHABLE], [WatchStatus.INVALID]):
                return line
        return None

    async def _conclude(self, outcome: DestroyOutcome, now: datetime) -> float | None:
        """Send the run's one terminal message with what happened to the instance, then stop
        watching, or keep the run live to retry a destroy that failed."""
        record = outcome.record
        stored = await self.store.get_meta(_pending_key(record))
        final = _with_instance_line(stored, record, outcome.line, billing=outcome.billing)
        # stamped when the run ended (never later than now): runs ending together are told in
        # the order they ended, not in the order their teardowns finished
        ended_at = min(record.ended_at or now, now)
        await self.store.enqueue(final, dedupe_key=f"{record.name}:terminal", at=ended_at)
        self.wake_outbox()
        if outcome.retry:
            await self.store.save_run(
                replace(record, next_check_at=now + timedelta(seconds=RETRY_TEARDOWN_S))
            )
            return RETRY_TEARDOWN_S
        await self.store.save_run(replace(record, live=False, next_check_at=None))
        return None

    async def _teardown_by_policy(self, record: RunRecord) -> DestroyOutcome:
        if record.instance_id is not None and record.teardown in (
            TeardownState.PENDING,
            TeardownState.FAILED,
        ):
            # A teardown already started (policy, deadline, lost instance): finish it. Only a
            # destroy that FAILED before was announced as still billing and is a retry; a
            # pending one was cut short by a restart (its DELETE may well have worked).
            failed_before = record.teardown == TeardownState.FAILED
            why = "retrying the teardown" if failed_before else "verified after a restart"
            return await self._destroy(record, why, announce=failed_before)
        forced = FORCED_BY_OUTCOME.get(record.outcome or "")
        if forced is not None and record.instance_id is not None:  # whatever destroy_on_* say
            return await self._destroy(record, forced, announce=False)
        settings = settings_for(self.config, record.name)
        on_done, on_fail = settings.destroy_on_done, settings.destroy_on_fail
        wanted = should_destroy(record.status, destroy_on_done=on_done, destroy_on_fail=on_fail)
        policy = f"destroy_on_done={str(on_done).lower()}, destroy_on_fail={str(on_fail).lower()}"
        if not wanted:
            line = f"kept running by policy ({policy}): still billing"
            return DestroyOutcome(line, False, record, billing=record.instance_id is not None)
        if record.instance_id is None:
            line = f"no cloud instance (local run); the policy would destroy it ({policy})"
            return DestroyOutcome(line, False, record)
        return await self._destroy(record, f"run {record.status}", announce=False)

    async def _destroy(self, record: RunRecord, reason: str, *, announce: bool) -> DestroyOutcome:
        """Destroy verified, at most once per run. `announce`: also send a message when it is
        gone (the terminal message says it otherwise)."""
        instance_id = record.instance_id
        assert instance_id is not None
        done = await self.store.action_result(record.name, "teardown") == TeardownState.DESTROYED
        if done or record.teardown == TeardownState.DESTROYED:
            return DestroyOutcome(f"{instance_id} destroyed", False, record)
        retried = record.teardown == TeardownState.FAILED
        await self.store.claim_action(record.name, "teardown", self.clock())
        record = replace(record, teardown=TeardownState.PENDING.value)
        await self.store.save_run(record)
        provider = self.provider_for(record)
        if provider is None:
            line = (
                f"{instance_id}: provider {record.provider!r} is not configured (no API key?), "
                "NOT destroyed"
            )
            return DestroyOutcome(line, False, replace(record, teardown=TeardownState.FAILED.value))
        accepted_key = "teardown:delete"
        accepted = await self.store.action_result(record.name, accepted_key) == "accepted"

        async def remember_accepted() -> None:
            try:  # a store that cannot take it (full disk) must not abort the verification
                await self.store.finish_action(record.name, accepted_key, "accepted", self.clock())
            except SleepwatchError as exc:
                log.warning("%s: could not remember the accepted DELETE: %s", record.name, exc)

        result = await destroy_verified(
            provider,
            instance_id,
            sleep=self.sleep,
            delete_accepted=accepted,
            on_delete_accepted=remember_accepted,
        )
        now = self.clock()
        state = (TeardownState.DESTROYED if result.destroyed else TeardownState.FAILED).value
        await self.store.finish_action(record.name, "teardown", state, now)
        record = replace(record, teardown=state, torn_down_at=now if result.destroyed else None)
        await self.store.save_run(record)
        console_url = provider.console_url(instance_id)
        message = teardown_message(record.name, instance_id, result, console_url=console_url)
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


def _pending_key(record: RunRecord) -> str:
    return pending_terminal_key(record.name)


def _with_instance_line(
    stored: str | None, record: RunRecord, instance_line: str, *, billing: bool
) -> OutboundMessage:
    if stored is None:
        message = OutboundMessage(
            kind=MessageKind.TERMINAL,
            title=f"{record.name}: {record.status}",
            run=record.name,
            status_line=record.last_status_line,
            summary=(("instance", instance_line),),
            topic=Topic.STOPPED,
            loud=True,  # how it ended was lost: a human should look
        )
    else:
        message = OutboundMessage.from_json(json.loads(stored))
    return with_instance_line(message, instance_line, billing=billing)
