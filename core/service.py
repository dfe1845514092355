"""The always-on engine: scheduler + one wait channel per run + the outbox sender, around one
Watcher. Built by the composition roots (`sleepwatch serve`, `sleepwatch demo`), which own the
store, the transports and the notifier; this class owns only the tasks it starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from core.cadence import resume_delays as resume_delays
from core.check_failures import FailingChecks, Queued
from core.config import Config
from core.control import WatcherControl
from core.errors import SleepwatchError
from core.gc_pace import GcPacer
from core.health import Heartbeat, stderr_line
from core.models import RunRecord
from core.notices import Rescan, hear_other_processes
from core.outbox import OutboxSender
from core.ping import Pinger
from core.ports import Clock, Notifier, ProviderFor
from core.scheduling import CheckScheduler
from core.sdnotify import SdNotifier
from core.settings import SettingsBook
from core.store import Store
from core.supervisor_session import SessionHub
from core.tasks import log_if_failed
from core.upkeep import prune_if_due, queue_kept_reminders
from core.waiter import RunWaiter, Sleep, keep_waiting
from core.watcher import TransportFor, Watcher

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
RESCAN_S = 30.0  # a full rescan at least this often, whatever the store says
PRUNE_EVERY_S = 3600.0
# A restart resumes every live run: their first checks and wait channels (and so their
# connects) start at most this many runs a second, oldest due first (a restart with thousands
# of runs would otherwise connect to all at once, and half the first checks time out).
START_CHECKS_PER_S = 50.0


class Service:
    def __init__(
        self,
        config: Config,
        store: Store,
        notifier: Notifier,
        provider_for: ProviderFor | None,
        transport_for: TransportFor,
        clock: Clock,
        *,
        emit: Callable[[str], None] = print,
        min_gap_s: float = 1.0,
        hold_s: float = 3.0,
        heartbeat_file: Path | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        alarm: Callable[[str], None] = stderr_line,
        reload_config: Callable[[], Config] | None = None,
        config_source: str = "the config file",
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        start_checks_per_s: float = START_CHECKS_PER_S,
        pinger: Pinger | None = None,
        sd: SdNotifier | None = None,
        gc_pacer: GcPacer | None = None,
    ) -> None:
        self.config = config
        self.pinger, self.gc_pacer = pinger, gc_pacer  # gc_pacer: core/gc_pace.py
        self.sd = sd or SdNotifier(None)
        self.reload_config = reload_config
        self.store = store
        self.clock = clock
        self.heartbeat_file = heartbeat_file
        self.heartbeat_s = heartbeat_s
        self.heartbeat = Heartbeat(store, notifier, clock, file=heartbeat_file, alarm=alarm)
        # What makes `sleepwatch health` fail, by source, set by the front end (e.g. polling).
        self.problems: dict[str, str] = {}
        self.halted = asyncio.Event()  # set when the service must not go on (store replaced)
        self.halt_reason = ""
        self._alarm = alarm
        self._pruned_at: datetime | None = None
        self.sleep = sleep
        self.jitter = jitter
        self.start_checks_per_s = start_checks_per_s
        self.channel_restarts: dict[str, int] = {}
        self.failing = FailingChecks(config.watcher.failing_checks_alert)
        self._stop = asyncio.Event()
        self._outbox_wake = asyncio.Event()
        self._build(notifier, provider_for, transport_for, emit, min_gap_s, hold_s, config_source)
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[str, asyncio.Task[None]] = {}
        self.finished: dict[str, asyncio.Event] = {}

    def _build(
        self,
        notifier: Notifier,
        provider_for: ProviderFor | None,
        transport_for: TransportFor,
        emit: Callable[[str], None],
        min_gap_s: float,
        hold_s: float,
        config_source: str,
    ) -> None:
        """The engine's parts, wired to this service (its outbox wake, check and ends)."""
        config, store, clock = self.config, self.store, self.clock
        # one supervisor session per host connection for every run there (issue 16), the
        # exec path the fallback while one is down. Only a started service (serve, demo) uses
        # them: a one-shot command's check leaves no session behind. None before start: execs.
        self.sessions: SessionHub | None = SessionHub(jitter=self.jitter)
        self.settings = SettingsBook(
            config, store, clock, self._outbox_wake.set, source=config_source
        )
        self.watcher = Watcher(
            store,
            config,
            transport_for,
            provider_for,
            clock,
            emit=emit,
            wake_outbox=self._outbox_wake.set,
        )
        self.scheduler = CheckScheduler(self.check, clock, jitter=self.jitter)
        self.control = WatcherControl(
            store, self.watcher, clock, self.scheduler, on_ended=self._finished
        )
        self.rescan = Rescan(store, self.settings, self.scheduler, self.watch, self.reload_config)
        self.sender = OutboxSender(
            store, notifier, clock, min_gap_s=min_gap_s, coalesce_s=3.0, hold_s=hold_s
        )

    async def check(self, run: str) -> float | None:
        """The scheduler's job. A check that raises is retried by the scheduler; one that keeps
        raising is alerted (FailingChecks), so a blind watcher is never silent."""
        try:
            interval = await self.watcher.check(run)
        except Exception as exc:
            await self._queue(self.failing.failed(run, exc, self.clock()))
            raise
        await self._queue(self.failing.succeeded(run, self.clock()))
        if interval is None:
            self._finished(run)
        return interval

    async def _queue(self, queued: Queued | None) -> None:
        if queued is None:
            return
        try:
            await self.store.enqueue(queued.message, dedupe_key=queued.dedupe_key, at=self.clock())
        except Exception:  # the store may be what fails; the log still says it
            log.exception("could not queue %r", queued.message.title)
            return
        self._outbox_wake.set()

    def _finished(self, run: str) -> None:
        self.watcher.forget(run)
        self.finished.setdefault(run, asyncio.Event()).set()
        if (waiter := self._waiters.pop(run, None)) is not None:
            waiter.cancel()

    async def start(self) -> None:
        """Schedule every live run in the store again (a restart resumes them all)."""
        self.watcher.sessions = self.sessions
        self.scheduler.start()
        sender = asyncio.create_task(self.sender.run(self._stop, self._outbox_wake))
        self._tasks.append(log_if_failed(sender, "outbox sender"))
        self._tasks.append(log_if_failed(asyncio.create_task(self._beat()), "heartbeat"))
        if self.gc_pacer is not None:
            pacing = asyncio.create_task(self.gc_pacer.run(self._stop, self.clock))
            self._tasks.append(log_if_failed(pacing, "gc pacing"))
        rescan = asyncio.create_task(self.rescan.run(self._stop, RESCAN_S))
        self._tasks.append(log_if_failed(rescan, "store rescan"))
        # The baseline is read before the runs are listed: a launch that commits in between is
        # in the list or changes the version, never neither.
        try:
            baseline = await self.store.data_version()
        except SleepwatchError:  # unreadable now: the first version read will rescan
            baseline = -1
        notices = asyncio.create_task(
            hear_other_processes(self.store, baseline, self._stop, self.rescan.request)
        )
        self._tasks.append(log_if_failed(notices, "store notices"))
        now = self.clock()
        records = await self.store.list_runs()
        await self.settings.learn(records)
        live = [r for r in records if r.live]
        for record, delay_s in resume_delays(live, now, self.start_checks_per_s):
            self.watch(record, delay_s=delay_s, wait_after_s=delay_s)
        self._outbox_wake.set()

    async def learn_runs(self) -> None:
        """Know every stored run's settings (a one-shot command from any shell needs them)."""
        await self.settings.learn(await self.store.list_runs())

    def request_reload(self) -> None:
        """SIGHUP: re-read the config file now (a rescan does it too)."""
        self.rescan.request()

    def watch(self, record: RunRecord, *, delay_s: float = 0.0, wait_after_s: float = 0.0) -> None:
        """Check the run in `delay_s` and keep its wait channel open from `wait_after_s` on."""
        self.finished.setdefault(record.name, asyncio.Event())
        self.scheduler.schedule(record.name, delay_s)
        running = self._waiters.get(record.name)
        if (running is not None and not running.done()) or record.ended_at is not None:
            return
        self._waiters[record.name] = log_if_failed(
            asyncio.create_task(self._keep_waiting(record, wait_after_s)), "wait channel"
        )

    def _waiter(self, record: RunRecord) -> RunWaiter:
        settings = self.watcher.settings(record.name)
        return RunWaiter(
            record,
            self.watcher.transport_for(record),
            python=settings.python,
            remote_root=settings.remote_root,
            quiet_s=settings.policy.thresholds.stall_after_s,
            timeout_s=self.config.watcher.wait_timeout,
            wake=self.scheduler.wake,
            sleep=self.sleep,
            jitter=self.jitter,
            sessions=self.watcher.sessions,
        )

    async def _keep_waiting(self, record: RunRecord, start_after_s: float = 0.0) -> None:
        if start_after_s > 0:  # a restart spreads its runs' channels like their first checks
            await asyncio.sleep(start_after_s)
        await keep_waiting(
            record,
            self._waiter,
            self.store.get_run,
            sleep=self.sleep,
            jitter=self.jitter,
            restarts=self.channel_restarts,
        )

    async def drain_outbox(self, timeout_s: float = 30.0) -> bool:
        """Wait until every stored message is sent (the demo's last step), deferred ones too.
        True if drained, False if some are still waiting when the time is up."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + timeout_s
        while loop.time() < give_up_at:
            if (await self.store.outbox_counts())[1] == 0:
                return True
            self._outbox_wake.set()
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        self._stop.set()
        self.scheduler.shutdown()
        tasks = [*self._tasks, *self._waiters.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._waiters.clear()
        await self.sender.flush()  # bounded: what is due goes before the process does
        if self.sessions is not None:
            await self.sessions.close()

    async def _beat(self) -> None:
        """While the loop is alive: see the store is still our file, prune it now and then,
        and write the heartbeat (`sleepwatch health` reads its age and problems)."""
        while not self._stop.is_set():
            await self.beat_once()
            await asyncio.sleep(self.heartbeat_s)

    async def beat_once(self) -> None:
        problem = self.store.file_problem()
        if problem is not None:
            self.halt(f"{problem}; stopping rather than writing to a file nobody will read")
            return
        now = self.clock()
        self._pruned_at = await prune_if_due(self.store, now, self._pruned_at, PRUNE_EVERY_S)
        problems = dict(self.problems)
        if self.sender.credentials_refused is not None:
            problems["telegram"] = f"{self.sender.credentials_refused}"
        found = await self.heartbeat.beat(problems)
        if await queue_kept_reminders(self.store, self.config, now):
            self._outbox_wake.set()
        # the loop came round: systemd's watchdog is fed; the outside ping says how it is
        self.sd.watchdog()
        if self.pinger is not None:
            await self.pinger.ping(not found, now)

    def halt(self, reason: str) -> None:
        """Ask `serve` to exit (non-zero) with `reason`: said at once, loudly."""
        if not self.halted.is_set():
            self.halt_reason = reason
            log.critical("%s", reason)
            self._alarm(f"sleepwatch: STOPPING: {reason}")
            self.halted.set()
