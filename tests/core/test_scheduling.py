"""core/scheduling.py on a real AsyncIOScheduler in the test's loop: a check in flight when
`serve` stops ends quietly (no traceback per run) and is not re-armed; a check that fails is
logged and re-armed, so watching goes on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from core.scheduling import GRAIN_S, MIN_GRACE_S, CheckScheduler, job_id, on_grain


def now() -> datetime:
    return datetime.now(UTC)


async def until(condition: object, what: str) -> None:
    for _ in range(600):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_check_in_flight_at_shutdown_ends_quietly_and_is_not_rearmed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def check(run: str) -> float | None:
        started.set()
        try:
            await asyncio.Event().wait()  # a probe that is still waiting on its host
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 60.0

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    scheduler.start()
    caplog.set_level(logging.DEBUG)
    scheduler.schedule("llama-ft", 0.0)
    await asyncio.wait_for(started.wait(), 30)
    assert scheduler.busy("llama-ft")

    scheduler.shutdown()
    await asyncio.wait_for(cancelled.wait(), 30)
    await until(lambda: not scheduler.busy("llama-ft"), "the check to end")
    await asyncio.sleep(0.1)  # the executor's done-callback runs after the task ends

    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]
    assert any("cancelled: the service is stopping" in r.getMessage() for r in caplog.records)
    assert scheduler.next_run_at("llama-ft") is None


async def test_a_check_that_fails_is_logged_and_rearmed(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    async def check(run: str) -> float | None:
        calls.append(run)
        raise RuntimeError("the store is locked")

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    scheduler.start()
    try:
        scheduler.schedule("llama-ft", 0.0)
        await until(lambda: calls, "the check")
        await until(lambda: scheduler.next_run_at("llama-ft") is not None, "the re-arm")
    finally:
        scheduler.shutdown()
    [failed] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "check of llama-ft failed; retrying in 60 s" in failed.getMessage()
    assert failed.exc_info is not None and "the store is locked" in str(failed.exc_info[1])
    next_at = scheduler.next_run_at("llama-ft")
    assert next_at is not None
    assert (next_at - now()).total_seconds() > MIN_GRACE_S / 2  # not at once: a backoff


async def test_rearms_on_the_loop_never_wake_it_through_its_self_pipe() -> None:
    """Every re-arm and every firing used to go through call_soon_threadsafe (a self-pipe write
    and one more turn of the loop, twice per check). From the loop's own thread they are plain
    call_soon now, and checks still fire, each when it is due."""
    loop = asyncio.get_running_loop()
    threadsafe: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: object, *args: object, **kwargs: object) -> object:
        threadsafe.append(callback)
        return real(callback, *args, **kwargs)  # type: ignore[arg-type]

    fired: list[str] = []

    async def check(run: str) -> float | None:
        fired.append(run)
        return None  # one check each

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    scheduler.start()
    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        await asyncio.sleep(0)  # the start's own first pass
        threadsafe.clear()
        for i in range(50):
            scheduler.schedule(f"run-{i}", 0.2 if i % 2 else 0.4)
        scheduler.schedule("late", 3600.0)
        await until(lambda: len(fired) == 50, "fifty checks")
        assert threadsafe == []
        assert fired[:25] == [f"run-{i}" for i in range(1, 50, 2)]  # the 0.2 s ones first
        assert scheduler.next_run_at("late") is not None
    finally:
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]
        scheduler.shutdown()


async def test_a_rearm_from_another_thread_still_wakes_the_loop() -> None:
    fired = asyncio.Event()

    async def check(run: str) -> float | None:
        fired.set()
        return None

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    scheduler.start()
    try:
        await asyncio.sleep(0)
        await asyncio.to_thread(scheduler.schedule, "from-a-thread", 0.1)
        await asyncio.wait_for(fired.wait(), 30)
    finally:
        scheduler.shutdown()


async def test_a_runs_one_job_lives_through_its_checks_and_goes_when_they_end() -> None:
    """The job is re-armed in place (modify_job, not a new Job per check: a third of the cost),
    says no next check while one is in flight, and is gone once a check returns None."""
    seen: list[object] = []
    due_while_checking: list[datetime | None] = []
    scheduler: CheckScheduler

    async def check(run: str) -> float | None:
        seen.append(scheduler._scheduler.get_job(job_id(run)))
        due_while_checking.append(scheduler.next_run_at(run))
        return 0.2 if len(seen) < 3 else None

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    scheduler.start()
    try:
        scheduler.schedule("llama-ft", 0.1)
        await until(lambda: len(seen) == 3 and not scheduler.busy("llama-ft"), "three checks")
        await asyncio.sleep(0.5)  # a fourth would fire by now
        assert len(seen) == 3
        assert seen[0] is not None and all(job is seen[0] for job in seen)
        assert due_while_checking == [None, None, None]
        assert scheduler.next_run_at("llama-ft") is None
        assert scheduler._scheduler.get_job(job_id("llama-ft")) is None
    finally:
        scheduler.shutdown()


async def test_a_rearm_made_during_the_last_check_is_kept() -> None:
    """A check that ends the cadence (None) drops only its parked job: a time set meanwhile (a
    resume, a wake from the chat) stands."""
    done = asyncio.Event()
    scheduler: CheckScheduler

    async def check(run: str) -> float | None:
        scheduler.schedule(run, 3600.0)
        done.set()
        return None

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    scheduler.start()
    try:
        scheduler.schedule("llama-ft", 0.1)
        await asyncio.wait_for(done.wait(), 30)
        await until(lambda: not scheduler.busy("llama-ft"), "the check to end")
        next_at = scheduler.next_run_at("llama-ft")
        assert next_at is not None and (next_at - now()).total_seconds() > 3000
    finally:
        scheduler.shutdown()


async def test_a_rearm_later_than_the_armed_timer_makes_no_pass_and_an_earlier_one_fires() -> None:
    """A pass over the jobs is made only when a re-arm is due before the timer already armed:
    moving checks a minute on (nearly every re-arm) costs no pass, a nearer one still fires."""
    fired: list[str] = []

    async def check(run: str) -> float | None:
        fired.append(run)
        return None

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    passes: list[None] = []
    real = scheduler._scheduler._process_jobs

    def counting() -> float | None:
        passes.append(None)
        return real()  # type: ignore[no-any-return]

    scheduler._scheduler._process_jobs = counting  # type: ignore[method-assign]
    scheduler.start()
    try:
        scheduler.schedule("first", 600.0)
        await asyncio.sleep(0.05)
        passes.clear()
        for i in range(20):
            scheduler.schedule(f"later-{i}", 900.0 + i)
            await asyncio.sleep(0)  # a pass would run here
        scheduler.schedule("first", 700.0)  # moved on: the timer armed for 600 s still leads
        await asyncio.sleep(0.05)
        assert passes == []
        scheduler.schedule("soon", 0.2)
        await until(lambda: fired == ["soon"], "the nearer check")
        assert scheduler.next_run_at("later-19") is not None
    finally:
        scheduler.shutdown()


def test_the_timer_moves_on_to_the_next_grain() -> None:
    start = 240 * GRAIN_S
    assert on_grain(start) == pytest.approx(start)
    assert on_grain(start + GRAIN_S / 100) == pytest.approx(start + GRAIN_S)
    assert on_grain(start + GRAIN_S * 0.99) == pytest.approx(start + GRAIN_S)


async def test_checks_due_within_one_grain_start_in_the_same_pass() -> None:
    """Runs due a few milliseconds apart are started by one pass of the scheduler (one timer
    firing on the grain), not by a timer each."""
    passes: list[int] = [0]
    started: dict[str, int] = {}
    everyone = asyncio.Event()

    async def check(run: str) -> float | None:
        started[run] = passes[0]
        if len(started) == 3:
            everyone.set()
        return None

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    inner = scheduler._scheduler
    original = inner._process_jobs

    def counted() -> float | None:
        passes[0] += 1
        return original()  # type: ignore[no-any-return]

    inner._process_jobs = counted
    scheduler.start()
    try:
        loop = asyncio.get_running_loop()
        grain_end = on_grain(loop.time() + 0.2)  # due 35, 30 and 25 ms before this grain ends
        for before_s, run in ((0.035, "a"), (0.030, "b"), (0.025, "c")):
            scheduler.schedule(run, grain_end - before_s - loop.time())
        await asyncio.wait_for(everyone.wait(), 30)
        assert set(started) == {"a", "b", "c"}
        assert len(set(started.values())) == 1, started
    finally:
        scheduler.shutdown()


async def test_a_timer_armed_a_grain_after_the_due_one_is_not_in_time() -> None:
    """A re-arm moves a run's check before the armed timer: the timer counts as in time only on
    the check's own grain or an earlier one, never a grain after it (else the check would start
    up to two grains late)."""

    async def check(run: str) -> float | None:
        return None

    scheduler = CheckScheduler(check, now, jitter=lambda: 0.5)
    inner = scheduler._scheduler
    scheduler.start()
    try:
        loop = asyncio.get_running_loop()
        due_at = on_grain(loop.time() + 5.0) - GRAIN_S / 2  # mid-grain, seconds away
        scheduler.schedule("ft", due_at - loop.time())
        await asyncio.sleep(0)  # the pass the re-arm asked for, if any
        own = on_grain(due_at)
        for timer_at, in_time in ((own - GRAIN_S, True), (own, True), (own + GRAIN_S, False)):
            inner._timeout.cancel()
            inner._timeout = loop.call_at(timer_at, lambda: None)
            assert inner._armed_in_time() is in_time, timer_at - own
    finally:
        scheduler.shutdown()
