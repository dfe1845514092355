"""The Bot API answering 429, 500, timing out, dropping the connection, or unreachable for ten
minutes: messages arrive afterwards, in order, none twice, and the sender does not hammer it.

The outbox sender runs on a fake clock (its waits are on that clock) with the real aiogram
client against the fake Bot API; the last test runs a whole service with real failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from aiogram import Bot
from pydantic import SecretStr

from bot.render import render_message
from bot.telegram import TelegramNotifier, build_bot
from core.models import MessageKind, OutboundMessage
from core.outbox import OutboxSender
from core.store import Store
from tests.reliability.helpers import (
    CHAT_ID,
    RUN,
    LocalHarness,
    local_config,
    trainer_command,
    write_trainer,
)

if TYPE_CHECKING:
    from tests.conftest import FakeClock
    from tests.fixtures.fake_telegram import FakeTelegram

REQUEST_TIMEOUT_S = 1.0


@dataclass
class Outbox:
    store: Store
    sender: OutboxSender
    clock: FakeClock
    messages: list[OutboundMessage]

    async def run_for(self, seconds: int, tg: FakeTelegram) -> list[tuple[float, int]]:
        """Drain once per simulated second; returns (elapsed s, sendMessage calls so far)."""
        seen: list[tuple[float, int]] = []
        for second in range(seconds):
            await self.sender.drain_once()
            seen.append((second, tg.methods().count("sendMessage")))
            if len(tg.sent) == len(self.messages):
                break
            self.clock.advance(1.0)
        return seen


@pytest_asyncio.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    bot = build_bot(
        SecretStr(fake_telegram.token), fake_telegram.base_url, timeout_s=REQUEST_TIMEOUT_S
    )
    yield bot
    await bot.session.close()


@pytest_asyncio.fixture
async def outbox(tmp_path: Path, bot: Bot, clock: FakeClock) -> AsyncIterator[Outbox]:
    store = await Store.open(tmp_path / "db.sqlite3")
    messages = [
        OutboundMessage(MessageKind.ALERT, f"{RUN}: attempt 2/3", run=RUN, reasons=("retry",)),
        OutboundMessage(MessageKind.ALERT, f"{RUN}: unreachable", run=RUN, reasons=("ssh",)),
        OutboundMessage(MessageKind.TERMINAL, f"{RUN}: done", run=RUN, summary=(("x", "y"),)),
    ]
    for number, message in enumerate(messages):
        await store.enqueue(message, dedupe_key=f"m{number}", at=clock())
        clock.advance(10)  # apart: no coalescing, three deliveries
    notifier = TelegramNotifier(bot, [CHAT_ID])
    sender = OutboxSender(store, notifier, clock, min_gap_s=0.0, hold_s=0.0)
    yield Outbox(store, sender, clock, messages)
    await store.close()


def assert_each_once_in_order(tg: FakeTelegram, messages: list[OutboundMessage]) -> None:
    assert [m["text"] for m in tg.sent] == [render_message(m) for m in messages]
    assert {m["chat_id"] for m in tg.sent} == {CHAT_ID}


def first_success_at(seen: list[tuple[float, int]], failures: int) -> float:
    return next(at for at, calls in seen if calls > failures)


@pytest.mark.parametrize(
    ("kind", "wait_s"),
    [("429", 7.0), ("500", 2.0), ("hang", 2.0), ("disconnect", 2.0)],
)
async def test_a_failed_delivery_is_retried_after_the_wait_and_nothing_overtakes_it(
    outbox: Outbox, fake_telegram: FakeTelegram, kind: str, wait_s: float
) -> None:
    fake_telegram.fail_next("sendMessage", kind, retry_after=7)
    seen = await outbox.run_for(60, fake_telegram)
    assert_each_once_in_order(fake_telegram, outbox.messages)
    # 429: the retry_after Telegram asked for; otherwise the first backoff step (2 s)
    assert first_success_at(seen, failures=1) == wait_s
    assert fake_telegram.methods().count("sendMessage") == len(outbox.messages) + 1
    sent, unsent = await outbox.store.outbox_counts()
    assert (sent, unsent) == (3, 0)


async def test_ten_minutes_unreachable_then_everything_arrives_in_order_once(
    outbox: Outbox, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.fail_next("sendMessage", "disconnect", times=10_000)
    seen = await outbox.run_for(600, fake_telegram)
    tries_in_outage = seen[-1][1]
    assert fake_telegram.sent == []
    # backoff 2, 4, 8 ... 256 s: a handful of tries in ten minutes, not one a second
    assert 5 <= tries_in_outage <= 12, seen
    fake_telegram._failures.clear()  # Telegram is back
    await outbox.run_for(400, fake_telegram)  # at most one capped backoff (300 s) later
    assert_each_once_in_order(fake_telegram, outbox.messages)


async def test_flood_control_on_every_message_still_delivers_each_once_in_order(
    outbox: Outbox, fake_telegram: FakeTelegram
) -> None:
    for _ in outbox.messages:  # 429 before each message goes through
        fake_telegram.fail_next("sendMessage", "429", retry_after=3)
    await outbox.run_for(120, fake_telegram)
    assert_each_once_in_order(fake_telegram, outbox.messages)
    assert fake_telegram.methods().count("sendMessage") == 2 * len(outbox.messages)


async def test_a_running_service_delivers_through_429_and_500_in_order_once(
    tmp_path: Path, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    run_dir = tmp_path / "runs" / RUN
    command = trainer_command(write_trainer(tmp_path), run_dir, steps=12, step_s=0.1)
    h = LocalHarness(local_config(tmp_path, command), TelegramNotifier(bot, [CHAT_ID]))
    fake_telegram.fail_next("sendMessage", "429", retry_after=1)
    fake_telegram.fail_next("sendMessage", "500")
    store = await Store.open(h.db)
    service = h.service(store)
    try:
        await h.launch(store)
        await service.start()
        await asyncio.wait_for(service.finished[RUN].wait(), 40)
        assert await service.drain_outbox(timeout_s=20)
    finally:
        await service.stop()
        await store.close()
    texts = [m["text"] for m in fake_telegram.sent]
    assert len(texts) == len(set(texts)) == 2, texts
    assert "attempt 2/3 started after gpu_fault" in texts[0]
    assert "done (completed)" in texts[1]
    sends = [m for m in fake_telegram.methods() if m in ("sendMessage", "sendPhoto")]
    # the alert after a 429 and a 500, then the end once, as a photo: it carries its chart
    assert sends == ["sendMessage"] * 3 + ["sendPhoto"], sends
