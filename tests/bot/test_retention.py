"""Retention: strangers flooding the bot and months of sent messages do not grow the store
without bound. Updates go through the real dispatcher and allow-list into the real store; the
service's heartbeat prunes it on an injected clock."""

from __future__ import annotations

import io

from aiogram import Bot, Dispatcher

from core import store as store_module
from core.config import Config
from core.console import ConsoleNotifier
from core.local import LocalTransport
from core.models import MessageKind, OutboundMessage
from core.service import Service
from core.store import Store
from tests.bot.conftest import ALLOWED_CHAT, STRANGER, feed
from tests.conftest import FakeClock
from tests.core.test_store import a_run
from tests.fixtures.fake_telegram import message_update

FLOOD = 60
KEEP = 25  # refused rows kept (the real bound is 1,000; a smaller one keeps the test quick)
DAY_S = 86400.0


def service_on(store: Store, clock: FakeClock) -> Service:
    local = LocalTransport()
    return Service(Config(), store, ConsoleNotifier(io.StringIO()), None, lambda r: local, clock)


async def verdicts(store: Store) -> list[str]:
    return [str(row["verdict"]) for row in await store.audit_rows(10_000)]


async def test_a_stranger_flood_is_pruned_to_a_bound_and_old_rows_expire(
    dp: Dispatcher, bot: Bot, store: Store, clock: FakeClock, monkeypatch
) -> None:
    monkeypatch.setattr(store_module, "AUDIT_REFUSED_MAX_ROWS", KEEP)
    service = service_on(store, clock)
    date = int(clock().timestamp())
    await feed(dp, bot, message_update(ALLOWED_CHAT, "/help", date=date))
    for number in range(FLOOD):
        await feed(dp, bot, message_update(STRANGER, f"spam {number}", date=date), number + 2)
    assert (await verdicts(store)).count("refused") == FLOOD

    await service.beat_once()
    kept = await verdicts(store)
    assert kept.count("refused") == KEEP  # the newest ones
    assert len(kept) == KEEP + 1  # the allowed chat's command stays
    newest = await store.audit_rows(1)
    assert newest[0]["command"] == f"spam {FLOOD - 1}"

    clock.advance(91 * DAY_S)  # past the audit's 90 days: everything that old goes
    await service.beat_once()
    assert await verdicts(store) == []


async def test_old_sent_messages_are_pruned_never_unsent_ones_or_a_live_runs(
    store: Store, clock: FakeClock
) -> None:
    service = service_on(store, clock)
    await store.upsert_run(a_run(name="live-run"))

    async def put(title: str, run: str | None) -> int:
        item = await store.enqueue(
            OutboundMessage(MessageKind.INFO, title, run=run), dedupe_key=title, at=clock()
        )
        assert item is not None
        return item

    sent_old = await put("old summary", None)
    live_old = await put("live run's alert", "live-run")
    unsent_old = await put("never delivered", None)
    for item in (sent_old, live_old):
        assert await store.mark_sent(item, clock())
    await service.beat_once()  # the first beat prunes: nothing is old yet
    clock.advance(31 * DAY_S)
    fresh = await put("fresh", None)
    assert await store.mark_sent(fresh, clock())

    await service.beat_once()
    left = {item.message.title for item in await store.pending(clock(), limit=100)}
    assert left == {"never delivered"}
    assert await store.outbox_counts() == (2, 1)  # the live run's and the fresh one
    again = OutboundMessage(MessageKind.INFO, "live run's alert", run="live-run")
    assert await store.enqueue(again, dedupe_key="live run's alert", at=clock()) is None
    assert unsent_old in {item.id for item in await store.pending(clock())}
