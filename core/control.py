"""What a human can ask of the watcher (chat commands and the CLI): the Control port's one
implementation. Run names typed by a human are only ever looked up, never used as paths.

Built by core.service.Service; reached through the Control port by the chat handlers
(bot/handlers.py), the morning summary (bot/summary.py) and the one-shot CLI commands
(core/cli.py: runs, kill, teardown, extend).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from core.baseline import heavier_of
from core.collect_report import meta_key, outputs_line
from core.cost import cost_limit, projected_usd
from core.durations import MUTE
from core.errors import AmbiguousRun, ProtocolError, SleepwatchError, TransportError, UnknownRun
from core.exit_plan import REQUESTED
from core.kept import is_kept
from core.messages import cost_usd
from core.models import Extension, RunRecord, RunView
from core.ports import Clock
from core.run_chart import chart_path, fresh_chart
from core.scheduling import CheckScheduler
from core.store import Store
from core.text import capped_line
from core.vocab import TeardownState
from core.watcher import Watcher

STATUS_TAIL_LINES = 15


class WatcherControl:
    def __init__(
        self,
        store: Store,
        watcher: Watcher,
        clock: Clock,
        scheduler: CheckScheduler | None = None,
        on_ended: Callable[[str], None] | None = None,
    ) -> None:
        self.on_ended = on_ended  # the service stops the run's wait channel
        self.store = store
        self.watcher = watcher
        self.clock = clock
        self.scheduler = scheduler

    async def resolve(self, name: str) -> str:
        names = await self.store.run_names()
        if name in names:
            return name
        matches = [n for n in names if n.startswith(name)] if name else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousRun(name, matches)
        raise UnknownRun(name, names)

    async def _record(self, run: str) -> RunRecord:
        record = await self.store.get_run(run)
        if record is None:
            raise UnknownRun(run, await self.store.run_names())
        return record

    async def list_runs(self, now: datetime) -> list[RunView]:
        """Kept instances (still billing after their run ended) first, then live runs."""
        views = [
            replace(self._view(r, now), outputs=await self._outputs(r.name))
            for r in await self.store.list_runs()
        ]
        return sorted(views, key=lambda v: (not v.kept, not v.live))  # stable: newest first

    async def view(self, run: str, now: datetime) -> RunView:
        record = await self._record(run)
        view = self._view(record, now)
        return replace(view, tail=await self._tail(record), outputs=await self._outputs(run))

    def _view(self, record: RunRecord, now: datetime) -> RunView:
        billing = record.instance_id is not None and record.teardown != TeardownState.DESTROYED
        end = record.torn_down_at or (now if record.live or billing else record.ended_at or now)
        hours = max(0.0, (end - record.launched_at).total_seconds() / 3600)
        next_at = self.scheduler.next_run_at(record.name) if self.scheduler else None
        max_cost = self._max_cost(record.name)
        return RunView(
            name=record.name,
            live=record.live,
            status_line=record.last_status_line or f"- {record.status} - - - - - {record.name}",
            instance_id=record.instance_id,
            cost_usd=cost_usd(hours, record.dph_total),
            dph_total=record.dph_total,
            muted_until=record.muted_until
            if record.muted_until and record.muted_until > now
            else None,
            deadline_at=record.deadline_at,
            next_check_at=next_at or record.next_check_at,
            interval_s=record.interval_s,
            teardown=record.teardown,
            kept=is_kept(record),
            projected_usd=projected_usd(record, now),
            cost_limit_usd=cost_limit(max_cost, record.cost_extended_usd),
            heavier=heavier_of(record),
        )

    async def _outputs(self, run: str) -> str | None:
        """A pull in progress in this process, else the stored result or progress."""
        collector = self.watcher.exits.collector if self.watcher is not None else None
        if collector is not None and run in collector.live:
            return collector.live[run].line()
        return outputs_line(await self.store.get_meta(meta_key(run)))

    def _max_cost(self, name: str) -> float | None:
        # a Control built without a watcher (a store-only tool) knows no settings
        return self.watcher.settings(name).max_cost if self.watcher is not None else None

    async def chart(self, run: str) -> bytes | None:
        record = await self._record(run)
        config = self.watcher.config
        if record.live:
            client = self.watcher.client(record)
            _, path = await fresh_chart(client, config, record.name, record.run_dir)
        else:
            path = chart_path(config, record.name)
        return await asyncio.to_thread(_read_if_there, path) if path else None

    async def _tail(self, record: RunRecord) -> tuple[str, ...]:
        try:
            tail = await self.watcher.client(record).tail(
                record.run_dir, STATUS_TAIL_LINES, timeout_s=20
            )
        except TransportError:
            return ("(log unavailable: host unreachable)",)
        except ProtocolError as exc:
            return (f"(log unavailable: {capped_line(str(exc))[:200]})",)
        return tuple(capped_line(line) for line in tail)

    async def kill(self, run: str) -> str:
        record = await self._record(run)
        if not record.live:
            return f"{run} is not live ({record.status}); nothing to stop"
        ok, message = await self.watcher.exits.ctl(record, "stop")
        if self.scheduler:
            self.scheduler.wake(run)
        return f"{run}: stop {'sent' if ok else 'FAILED'}: {message}"

    async def teardown(self, run: str) -> str:
        async with self.watcher.lock(run):  # not in the middle of a check or an exit
            text = await self._teardown(run)
        if self.on_ended is not None and not (await self._record(run)).live:
            self.on_ended(run)
        return text

    async def _teardown(self, run: str) -> str:
        record = await self._record(run)
        if record.teardown == TeardownState.DESTROYED:
            return f"{run}: instance {record.instance_id} was already destroyed"
        if record.instance_id is None and not record.live:
            return f"{run}: no cloud instance, and the run has ended: nothing to tear down"
        text, retry_s = await self.watcher.exits.teardown_live(record, REQUESTED)
        if self.scheduler:
            if retry_s is None:
                self.scheduler.unschedule(run)
            else:
                self.scheduler.schedule(run, retry_s)
        return f"{run}: {text}"

    async def extend(self, run: str, seconds: float, now: datetime) -> Extension:
        record = await self._record(run)
        max_cost = self._max_cost(run)
        if record.deadline_at is None and max_cost is None:
            raise NoDeadline(run)
        deadline = (
            None
            if record.deadline_at is None
            else max(record.deadline_at, now) + timedelta(seconds=seconds)
        )
        extended = record.cost_extended_usd
        if max_cost is not None and record.dph_total is not None:
            extended += seconds / 3600 * record.dph_total
        await self.store.set_human_fields(
            run,
            deadline_at=deadline if deadline is not None else ...,
            cost_extended_usd=float(extended),
        )
        return Extension(deadline, cost_limit(max_cost, extended))

    async def keep(self, run: str, now: datetime) -> str:
        record = await self._record(run)
        if record.instance_id is None:
            return f"{run} has no cloud instance: nothing is billing"
        if record.teardown == TeardownState.DESTROYED:
            return f"{run}: instance {record.instance_id} is already destroyed"
        if record.ended_at is None:
            return f"{run} is still running: /keep is for an instance left after its run ended"
        if not is_kept(record):
            return f"{run}: instance {record.instance_id} was already acknowledged"
        await self.store.set_human_fields(run, kept_acked_at=now)
        return (
            f"{run}: instance {record.instance_id} is kept; no more reminders. It still bills "
            f"until you /teardown {run}"
        )

    async def mute(self, run: str, seconds: float, now: datetime) -> datetime:
        await self._record(run)
        until = now + timedelta(seconds=MUTE.clamp(seconds))
        await self.store.set_human_fields(run, muted_until=until)
        return until


class NoDeadline(SleepwatchError):
    """/extend of a run without max_hours: extending would create a teardown it never had."""

    permanent = True

    def __init__(self, run: str) -> None:
        super().__init__(
            f"{run} has no deadline (no max_hours) and no max_cost: nothing to extend, and it "
            "will not be torn down for time or money"
        )


def _read_if_there(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
