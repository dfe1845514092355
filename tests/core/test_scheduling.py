"""core/scheduling.py on a real AsyncIOScheduler in the test's loop: a check in flight when
`serve` stops ends quietly (no traceback per run) and is not re-armed; a check that fails is
logged and re-armed, so watching goes on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from core.scheduling import MIN_GRACE_S, CheckScheduler


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
