"""Side effects that end or restart an attempt, each claimed in the store so it happens once:
stall recovery (`ctl kill-attempt`), the terminal summary, collection, teardown by policy.

Called by core/watcher.py (`_act`: a kill, a terminal state, a live run's ending), core/control.py
(/kill, /teardown) and core/demo.py. Each exit reads what it needs from the store, asks the pure
core/exit_plan.py what it means (effects as data, in order) and applies them in `_apply`, the
one place an exit writes; only the I/O itself (collect, `ctl`, the provider's DELETE) runs
between the planned steps."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial

from core.collect import Collector
from core.collect_report import uncollected_fate, with_outputs, with_uncollected
from core.config import Config
from core.errors import ProtocolError, SleepwatchError, TransportError
from core.exit_plan import (
    COLLECT_FIRST,
    LOST,
    REQUESTED,
    RETRY_TEARDOWN_S,
    TEARDOWN_KEY,
    ClaimAction,
    Destroy,
    DestroyOutcome,
    Effect,
    Enqueue,
    FinishAction,
    HoldMessage,
    SaveRun,
    held_message,
    plan_claim,
    plan_conclude,
    plan_destroyed,
    plan_ending,
    plan_teardown,
    plan_terminal,
    retry_later,
    terminal_message_of,
)
from core.memory import Memory
from core.models import OutboundMessage, RunRecord
from core.outputs import Collected, CollectResult
from core.ports import Clock, Provider, ProviderFor, Transport
from core.protocol import ProbeSnapshot, SupervisorState
from core.run_chart import pictured
from core.run_settings import settings_for
from core.store import Store
from core.supervisor_client import client_for
from core.teardown import destroy_verified, stop_best_effort, teardown_message
from core.vocab import TeardownState, WatchStatus, pending_terminal_key

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
DELETE_ACCEPTED_KEY = "teardown:delete"  # the provider took the DELETE: a restart verifies it


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
        """Terminal state: collect, teardown by policy, then one terminal message, then stop
        watching. Safe to repeat after a crash at any point. Returns a retry interval while
        the outputs are still coming or a destroy keeps failing (the instance is still
        billing), else None."""
        now = self.clock()
        if state is not None:
            stall_kills = Memory.from_json(record.memory).stall_kills if record.memory else ()
            notify_done = self.config.telegram.notify_done
            message = terminal_message_of(
                record, state, probe, now, stall_kills=stall_kills, notify_done=notify_done
            )
            transport = self.transport_for(record)
            message = await pictured(message, probe, state, self.config, record, transport)
            record = await self._apply(plan_terminal(record, state, message, now).effects, record)
        if record.teardown is None:  # none started yet: the outputs come off first
            collected = await self.collector.collect(record)
            if not collected.settled:  # the run stays live: the next check goes on with it
                retry_s = collected.retry_s or RETRY_TEARDOWN_S
                await self._apply(retry_later(record, retry_s, now).effects, record)
                return retry_s
            if collected.state is Collected.FAILED and not collected.logs_only:
                return await self._conclude(await self._uncollected(record, collected), now)
            await self._note_outputs(record, collected)
        return await self._conclude(await self._teardown_by_policy(record), now)

    async def _note_outputs(
        self, record: RunRecord, collected: CollectResult, fate: str | None = None
    ) -> None:
        """The outputs line in the held terminal message; with `fate`, what was not collected
        and the instance's fate too (one message, no alert of its own)."""
        if (held := await self._held(record)) is not None:
            told = with_outputs(held, collected.line)
            told = told if fate is None else with_uncollected(told, collected, fate)
            await self._apply([HoldMessage(record.name, told)], record)

    async def _uncollected(self, record: RunRecord, collected: CollectResult) -> DestroyOutcome:
        """Keep the instance or destroy it by `destroy_when_uncollected` (default: keep:
        nothing is lost that money can save); the terminal message says which, loud if kept."""
        destroy, fate = uncollected_fate(
            record.name,
            record.instance_id,
            destroy=settings_for(self.config, record.name).destroy_when_uncollected,
            dph_total=record.dph_total,
        )
        await self._note_outputs(record, collected, fate)
        if destroy or record.instance_id is None:
            return await self._teardown_by_policy(record)
        why = "outputs not all collected (destroy_when_uncollected = false)"
        line = f"{record.instance_id} KEPT: {why}: still billing"
        return DestroyOutcome(line, False, record, billing=True)

    async def teardown_live(self, record: RunRecord, reason: str) -> tuple[str, float | None]:
        """Tear down a run that is not terminal (deadline, cost, lost instance, /teardown): the
        run ends `stopped` with the reason as its outcome and one terminal message. Returns
        what happened and, while the destroy keeps failing, when to try again (the run stays
        live and its next check retries the destroy)."""
        now = self.clock()
        ended = record.ended_at is not None  # its terminal message is already written
        if record.instance_id is None:
            ok, message = await self.ctl(record, "stop")
            if not ok:  # the trainer may run on: keep watching and try again
                await self._apply(retry_later(record, RETRY_TEARDOWN_S, now).effects, record)
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
        step = Destroy(reason, announce=ended and reason != REQUESTED)
        outcome = await self._destroy(record, step)
        return outcome.line, await self._conclude(outcome, now)

    async def _begin_ending(self, record: RunRecord, reason: str, now: datetime) -> RunRecord:
        last_seen = await self._last_seen_line(record)
        return await self._apply(plan_ending(record, reason, last_seen, now).effects, record)

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
        step, retry_s = plan_conclude(outcome, await self._held(outcome.record), now)
        await self._apply(step.effects, outcome.record)
        return retry_s

    async def _teardown_by_policy(self, record: RunRecord) -> DestroyOutcome:
        settings = settings_for(self.config, record.name)
        planned = plan_teardown(
            record,
            destroy_on_done=settings.destroy_on_done,
            destroy_on_fail=settings.destroy_on_fail,
        )
        if isinstance(planned, DestroyOutcome):
            return planned
        return await self._destroy(record, planned)

    async def _destroy(self, record: RunRecord, step: Destroy) -> DestroyOutcome:
        """Destroy verified, at most once per run (`step.announce`: also send a message when
        it is gone; the terminal message says it otherwise)."""
        assert record.instance_id is not None
        result_before = await self.store.action_result(record.name, TEARDOWN_KEY)
        retried = record.teardown == TeardownState.FAILED
        provider = self.provider_for(record)
        claimed, outcome = plan_claim(
            record,
            destroyed_before=result_before == TeardownState.DESTROYED,
            has_provider=provider is not None,
            now=self.clock(),
        )
        record = await self._apply(claimed.effects, record)
        if outcome is not None or provider is None:
            assert outcome is not None
            return outcome
        return await self._delete(record, provider, step, retried=retried)

    async def _delete(
        self, record: RunRecord, provider: Provider, step: Destroy, *, retried: bool
    ) -> DestroyOutcome:
        """The DELETE, verified by reading back; one the provider accepted is remembered, so a
        restart verifies it instead of sending another."""
        instance_id = record.instance_id
        assert instance_id is not None
        accepted = await self.store.action_result(record.name, DELETE_ACCEPTED_KEY) == "accepted"
        result = await destroy_verified(
            provider,
            instance_id,
            sleep=self.sleep,
            delete_accepted=accepted,
            on_delete_accepted=partial(self._remember_accepted, record),
        )
        console_url = provider.console_url(instance_id)
        message = teardown_message(record.name, instance_id, result, console_url=console_url)
        after, outcome = plan_destroyed(
            record,
            step,
            destroyed=result.destroyed,
            last_error=result.last_error,
            message=message,
            retried=retried,
            now=self.clock(),
        )
        await self._apply(after.effects, record)
        if result.destroyed:
            log.info("%s: instance %s destroyed (%s)", record.name, instance_id, step.reason)
        return outcome

    async def _remember_accepted(self, record: RunRecord) -> None:
        try:  # a store that cannot take it (full disk) must not abort the verification
            remembered = FinishAction(record.name, DELETE_ACCEPTED_KEY, "accepted", self.clock())
            await self._apply([remembered], record)
        except SleepwatchError as exc:
            log.warning("%s: could not remember the accepted DELETE: %s", record.name, exc)

    async def _held(self, record: RunRecord) -> OutboundMessage | None:
        return held_message(await self.store.get_meta(pending_terminal_key(record.name)))

    async def _apply(self, effects: Sequence[Effect], record: RunRecord) -> RunRecord:
        """The one place an exit writes: each planned effect, in order. Returns the run as
        the last SaveRun left it (else `record`). Wakes the sender once for what it queued."""
        for effect in effects:
            if isinstance(effect, SaveRun):
                await self.store.save_run(effect.record)
                record = effect.record
            elif isinstance(effect, HoldMessage):
                text = json.dumps(effect.message.to_json())
                await self.store.set_meta(pending_terminal_key(effect.run), text)
            elif isinstance(effect, Enqueue):
                await self.store.enqueue(effect.message, dedupe_key=effect.dedupe_key, at=effect.at)
            elif isinstance(effect, ClaimAction):
                await self.store.claim_action(effect.run, effect.key, effect.at)
            else:
                await self.store.finish_action(effect.run, effect.key, effect.result, effect.at)
        if any(isinstance(effect, Enqueue) for effect in effects):
            self.wake_outbox()
        return record
