"""Real long polling against the fake: start-up survives an unreachable Telegram."""

from __future__ import annotations

import asyncio

from bot.telegram import start_polling_resilient
from tests.bot.conftest import ALLOWED_CHAT, T0
from tests.fixtures.fake_telegram import message_update


async def wait_for(predicate, timeout_s: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout_s)


async def test_polling_retries_until_telegram_answers_then_serves_commands(dp, bot, fake_telegram):
    fake_telegram.fail_next("deleteWebhook", "disconnect", times=2)
    fake_telegram.fail_next("setMyCommands", "500")
    backoff: list[float] = []

    async def fast_sleep(seconds: float) -> None:
        backoff.append(seconds)
        await asyncio.sleep(0)

    stop = asyncio.Event()
    polling = asyncio.create_task(start_polling_resilient(bot, dp, stop, fast_sleep))
    fake_telegram.push_update(message_update(ALLOWED_CHAT, "/runs", date=int(T0.timestamp())))

    await wait_for(lambda: fake_telegram.sent)
    stop.set()
    await asyncio.wait_for(polling, 10)

    assert backoff == [1.0, 2.0, 4.0]
    assert "Runs: 1 live, 1 ended" in fake_telegram.sent[0]["text"]
    registered = dict(fake_telegram.calls)["setMyCommands"]["commands"]
    assert [c["command"] for c in registered] == [
        "runs",
        "status",
        "kill",
        "teardown",
        "keep",
        "mute",
        "extend",
        "help",
    ]


async def test_stop_ends_the_retry_loop_while_telegram_is_down(dp, bot, fake_telegram):
    fake_telegram.fail_next("deleteWebhook", "500", times=1000)
    stop = asyncio.Event()
    polling = asyncio.create_task(start_polling_resilient(bot, dp, stop, first_delay_s=30))
    await wait_for(lambda: fake_telegram.calls)

    stop.set()
    await asyncio.wait_for(polling, 5)

    assert fake_telegram.methods() == ["deleteWebhook"]


async def test_cancelling_the_task_stops_polling_cleanly(dp, bot, fake_telegram):
    polling = asyncio.create_task(start_polling_resilient(bot, dp))
    await wait_for(lambda: "getUpdates" in fake_telegram.methods())

    polling.cancel()
    await asyncio.gather(polling, return_exceptions=True)

    assert polling.cancelled()
    assert not dp._running_lock.locked()  # aiogram's "is polling" flag
