"""APScheduler adapter: it only decides *when*; `Watcher.check` does the work.

One job per run with a stable id, re-armed after every check with the interval the check
returned. The job lives as long as the run is watched: a firing parks it (`Parked`) and the
check's end moves it to its next time (modify_job: a third of add_job's cost, which builds a Job
and inspects the callable's signature on every re-arm; at 5,000 runs that is 83 re-arms a
second). The scheduler's in-memory job store is fine: the store of record is SQLite, and at
start-up every live run is scheduled again from it.

Built by core.service (one CheckScheduler whose job is Service.check); core.control wakes or
drops a run's job; bot/app.py adds the morning summary's cron job.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from core.ports import Clock

log = logging.getLogger(__name__)

Check = Callable[[str], Awaitable[float | None]]
MIN_GRACE_S = 60.0
WAKE_DEBOUNCE_S = 0.3  # several wakes in a burst (status, then attempt) make one check
SKIPPED_RETRY_S = 1.0
MIN_DELAY_S = 0.1
# Each interval a check returns is stretched or shrunk by up to half this fraction at random:
# runs launched (or resumed) together drift apart instead of probing in lock-step forever.
JITTER_FRACTION = 0.1
# the armed timer counts as in time for a job due this much before its grain: the timer was set
# from the wall clock a moment earlier (and the loop's clock is another clock)
TIMER_SLACK_S = 0.005
# The scheduler's timer fires only on multiples of this on the loop's clock: the checks due
# within one grain start together, and share the loop's turns, the scheduler's pass and the
# store's commit (at 5,000 runs a timer per check was 83 wake-ups a second). A check starts at
# most a grain (and TIMER_SLACK_S) after it was due.
GRAIN_S = 0.05
# where a fired job waits for its check to re-arm it: it never fires there
PARKED_AT = datetime(9999, 1, 1, tzinfo=UTC)


def job_id(run: str) -> str:
    return f"check:{run}"


class LoopScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler whose wake-ups stay on the loop when they start there.

    APScheduler 3 wakes its loop through call_soon_threadsafe on every add_job and every timer
    firing: a write to the loop's self-pipe and one more turn of the loop each time, twice per
    check (measured at 1,000 runs: the self-pipe's sends were a fifth of serve's syscalls).
    Here a wake-up from the loop's own thread is a call_soon, and several in one turn (a burst
    of re-arms) make one pass over the job store. From another thread it is still threadsafe.
    """

    _pass: asyncio.Handle | None = None

    def start(self, paused: bool = False) -> None:
        self._pass = None  # a pass left pending on a loop that closed never ran
        super().start(paused)

    def wakeup(self) -> None:
        loop = self._eventloop
        if loop is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if not on_loop:
            loop.call_soon_threadsafe(self._process_now)
        elif self._pass is None and not self._armed_in_time():
            self._pass = loop.call_soon(self._process_now)

    def _armed_in_time(self) -> bool:
        """Whether the armed timer fires no later than the earliest job is due: then a pass now
        would find nothing due and arm the same timer again. So it is for nearly every re-arm
        (a check moved a minute on while others are due within milliseconds)."""
        timer = self._timeout
        if timer is None or timer.cancelled() or self.state != STATE_RUNNING:
            return False
        due = [at for store in self._jobstores.values() if (at := store.get_next_run_time())]
        if not due:
            return True
        due_in_s = min(due).timestamp() - time.time()
        wanted = on_grain(self._eventloop.time() + due_in_s + TIMER_SLACK_S)
        return bool(timer.when() < wanted + GRAIN_S / 2)  # on that grain or an earlier one

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None:
            loop = self._eventloop
            self._timeout = loop.call_at(on_grain(loop.time() + wait_seconds), self._process_now)

    def _process_now(self) -> None:
        self._pass = None
        if self._eventloop is None:
            return  # shut down meanwhile
        self._stop_timer()
        self._start_timer(self._process_jobs())


class Parked(BaseTrigger):  # type: ignore[misc]
    """A check job's trigger: its times are set by CheckScheduler.schedule (next_run_time);
    after a firing it parks the job at PARKED_AT, so the job stays in the store (a one-shot
    trigger would have it removed) until the check re-arms it or drops it."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        return PARKED_AT

    def __str__(self) -> str:
        return "parked between checks"


class CheckScheduler:
    def __init__(
        self, check: Check, clock: Clock, *, jitter: Callable[[], float] = random.random
    ) -> None:
        self._check = check
        self._clock = clock
        self._jitter = jitter
        self._scheduler = LoopScheduler(timezone="UTC")
        self._running: set[str] = set()
        self._again: set[str] = set()
        # A firing that APScheduler skips (instance still counted as running, or missed) leaves
        # the job parked: the run's checks would end for good. Re-arm it instead.
        self._scheduler.add_listener(self._rearm, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def schedule(self, run: str, delay_s: float) -> None:
        """(Re)arm the run's one job. misfire_grace_time is at least the interval: APScheduler's
        default of 1 s would silently skip a check that fires late (a busy loop, a suspend)."""
        # Never due at once: a job re-armed from inside its own run would fire while APScheduler
        # still counts that run as an instance, and be skipped (max_instances=1).
        at = self._clock() + timedelta(seconds=max(MIN_DELAY_S, delay_s))
        grace = int(max(MIN_GRACE_S, delay_s))
        try:
            self._scheduler.modify_job(job_id(run), next_run_time=at, misfire_grace_time=grace)
        except JobLookupError:
            self._scheduler.add_job(
                self._run_check,
                Parked(),
                args=(run,),
                id=job_id(run),
                next_run_time=at,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=grace,
            )

    def wake(self, run: str) -> None:
        """Check now (the wait channel heard something). During a check, check again after it."""
        if run in self._running:
            self._again.add(run)
        else:
            self.schedule(run, WAKE_DEBOUNCE_S)

    def unschedule(self, run: str) -> None:
        try:
            self._scheduler.remove_job(job_id(run))
        except JobLookupError:
            pass

    def busy(self, run: str) -> bool:
        return run in self._running

    def next_run_at(self, run: str) -> datetime | None:
        """When the run's next check is due; None while none is (a check in flight has its
        job parked, and re-arms it when it ends)."""
        job = self._scheduler.get_job(job_id(run))
        if job is None or self._parked(job.next_run_time):
            return None
        return job.next_run_time  # type: ignore[no-any-return]

    @staticmethod
    def _parked(at: datetime | None) -> bool:
        return at is None or at >= PARKED_AT

    def _drop_if_parked(self, run: str) -> None:
        """The run's job goes unless something re-armed it meanwhile (a wake, a resume)."""
        job = self._scheduler.get_job(job_id(run))
        if job is not None and self._parked(job.next_run_time):
            job.remove()

    def add_cron(
        self, func: Callable[[], Awaitable[None]], hour: int, minute: int, timezone: str
    ) -> None:
        self._scheduler.add_job(
            func,
            CronTrigger(hour=hour, minute=minute, timezone=timezone),
            id="morning-summary",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )

    def _rearm(self, event: JobEvent) -> None:
        if event.job_id.startswith("check:"):
            run = event.job_id.removeprefix("check:")
            log.warning("check of %s was skipped by the scheduler; re-armed", run)
            self.schedule(run, SKIPPED_RETRY_S)

    async def _run_check(self, run: str) -> None:
        self._running.add(run)
        try:
            interval = await self._check(run)
        except asyncio.CancelledError:
            # serve is stopping (the executor cancels what is in flight). APScheduler would log
            # it as the job's error: a traceback per check in flight, thousands at 5,000 runs.
            log.debug("check of %s cancelled: the service is stopping", run)
            self._drop_if_parked(run)
            return
        except Exception:  # a job records and logs its own errors; watching goes on
            log.exception("check of %s failed; retrying in 60 s", run)
            interval = MIN_GRACE_S
        finally:
            self._running.discard(run)
        if interval is not None:
            interval = jittered(interval, self._jitter())
        if run in self._again:
            self._again.discard(run)
            if interval is not None:
                interval = WAKE_DEBOUNCE_S
        if interval is not None:
            self.schedule(run, interval)
        else:
            self._drop_if_parked(run)  # no more checks by cadence


def on_grain(when: float) -> float:
    """`when` (the loop's clock) moved on to the next multiple of GRAIN_S."""
    return math.ceil(when / GRAIN_S) * GRAIN_S


def jittered(interval_s: float, jitter: float) -> float:
    """`interval_s` moved by up to ±JITTER_FRACTION/2 (jitter in [0, 1)); intervals under a
    second (a retry of a skipped firing, a wake) are kept as they are."""
    if interval_s < 1.0:
        return interval_s
    return interval_s * (1.0 + JITTER_FRACTION * (min(max(jitter, 0.0), 1.0) - 0.5))
