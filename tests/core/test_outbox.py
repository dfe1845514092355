"""The outbox sender against the real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from core.errors import DeliveryError, StoreFull
from core.migrate import load_migrations
from core.models import MessageKind, OutboundMessage, OutboxItem
from core.outbox import OutboxSender, backoff_s, combine_alerts, plan_batches
from core.store import Store
from tests.conftest import FakeClock

T0 = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)


async def due_ids(store: Store, at: datetime) -> list[int]:
    return [item.id for item in await store.pending(at)]


def last_error(db_path: Path, item_id: int) -> str:
    with closing(sqlite3.connect(db_path)) as conn:
        row = conn.execute("SELECT last_error FROM outbox WHERE id = ?", (item_id,)).fetchone()
    return str(row[0])


class RecordingNotifier:
    def __init__(self) -> None:
        self.delivered: list[OutboundMessage] = []
        self.failures: list[Exception] = []

    async def deliver(self, message: OutboundMessage) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(message)


def alert(title: str, run: str = "llama-ft", chat_id: int | None = None) -> OutboundMessage:
    return OutboundMessage(
        kind=MessageKind.ALERT,
        title=title,
        run=run,
        status_line=f"2026-11-28T03:00:00Z running 1/3 10/90 0% - - {run}",
        reasons=(f"{title} reason",),
        log_lines=(f"{title} log",),
        chat_id=chat_id,
    )


def terminal(title: str) -> OutboundMessage:
    return OutboundMessage(kind=MessageKind.TERMINAL, title=title, run="llama-ft")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest_asyncio.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(db_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_sender(
    store: Store,
    notifier: RecordingNotifier,
    clock: FakeClock,
    sleeps: list[float],
    **kw: float,
) -> OutboxSender:
    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    return OutboxSender(store, notifier, clock, sleep=fake_sleep, **kw)


async def put(store: Store, clock: FakeClock, message: OutboundMessage) -> int:
    item_id = await store.enqueue(message, dedupe_key=None, at=clock())
    assert item_id is not None
    return item_id


async def test_it_delivers_due_messages_in_order_and_marks_them_sent(store, clock, sleeps):
    notifier = RecordingNotifier()
    for name in ("one", "two", "three"):
        await put(store, clock, terminal(name))
    sender = make_sender(store, notifier, clock, sleeps)

    assert await sender.drain_once() == 3
    assert [m.title for m in notifier.delivered] == ["one", "two", "three"]
    assert await store.outbox_counts() == (3, 0)
    assert await sender.drain_once() == 0


async def test_it_never_sends_more_than_one_message_per_gap(store, clock, sleeps):
    notifier = RecordingNotifier()
    for name in ("one", "two", "three"):
        await put(store, clock, terminal(name))

    await make_sender(store, notifier, clock, sleeps, min_gap_s=1.0).drain_once()

    assert sleeps == [1.0, 1.0]


async def test_a_restarted_sender_neither_loses_nor_repeats(store, clock, sleeps):
    notifier = RecordingNotifier()
    for name in ("one", "two", "three"):
        await put(store, clock, terminal(name))
    await put(store, clock, terminal("four"))
    first = make_sender(store, notifier, clock, sleeps)

    async def crash_after_one(message: OutboundMessage) -> None:
        notifier.delivered.append(message)
        if len(notifier.delivered) == 2:
            raise asyncio.CancelledError  # the process dies while delivering "two"

    notifier.deliver = crash_after_one  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await first.drain_once()

    second_notifier = RecordingNotifier()
    second = make_sender(store, second_notifier, clock, sleeps)
    assert await second.drain_once() == 3
    # "two" was handed over but never marked: it goes again (at-least-once), nothing else does.
    assert [m.title for m in second_notifier.delivered] == ["two", "three", "four"]


async def test_retry_after_defers_exactly_that_long_and_keeps_the_order(
    store, clock, sleeps, db_path
):
    notifier = RecordingNotifier()
    first = await put(store, clock, terminal("one"))
    await put(store, clock, terminal("two"))
    notifier.failures = [DeliveryError("429", retry_after_s=7)]
    sender = make_sender(store, notifier, clock, sleeps)

    assert await sender.drain_once() == 0
    assert await due_ids(store, T0 + timedelta(seconds=6.99)) == [first + 1]
    assert await due_ids(store, T0 + timedelta(seconds=7)) == [first, first + 1]
    assert "retry after 7" in last_error(db_path, first)
    clock.advance(6)
    assert await sender.drain_once() == 0  # "two" is due but must not overtake "one"
    assert notifier.delivered == []

    clock.advance(1)
    assert await sender.drain_once() == 2
    assert [m.title for m in notifier.delivered] == ["one", "two"]


async def test_transient_errors_back_off_exponentially(store, clock, sleeps):
    notifier = RecordingNotifier()
    item = await put(store, clock, terminal("one"))
    notifier.failures = [DeliveryError("502"), DeliveryError("502"), DeliveryError("502")]
    sender = make_sender(store, notifier, clock, sleeps)

    for wait_s in (2.0, 4.0, 8.0):
        assert await sender.drain_once() == 0
        assert await due_ids(store, clock() + timedelta(seconds=wait_s - 0.01)) == []
        clock.advance(wait_s)
        assert await due_ids(store, clock()) == [item]
    assert await sender.drain_once() == 1
    assert [backoff_s(0), backoff_s(1), backoff_s(2)] == [2.0, 4.0, 8.0]
    assert backoff_s(50) == 300.0


async def test_a_notifier_bug_is_retried_like_a_transient_error(store, clock, sleeps, db_path):
    notifier = RecordingNotifier()
    item = await put(store, clock, terminal("one"))
    notifier.failures = [RuntimeError("boom")]
    sender = make_sender(store, notifier, clock, sleeps)

    assert await sender.drain_once() == 0
    assert "RuntimeError: boom" in last_error(db_path, item)


async def test_a_permanent_error_stays_visible_and_does_not_block_the_queue(
    store, clock, sleeps, db_path
):
    notifier = RecordingNotifier()
    bad = await put(store, clock, terminal("bad"))
    await put(store, clock, terminal("good"))
    notifier.failures = [DeliveryError("chat not found", permanent=True)]
    sender = make_sender(store, notifier, clock, sleeps)

    assert await sender.drain_once() == 1
    assert [m.title for m in notifier.delivered] == ["good"]
    assert await store.outbox_counts() == (1, 1)
    assert await due_ids(store, T0 + timedelta(hours=23)) == []
    assert await due_ids(store, T0 + timedelta(days=1)) == [bad]
    assert last_error(db_path, bad).startswith("permanent:")


async def test_alerts_created_together_go_out_as_one_message(store, clock, sleeps):
    notifier = RecordingNotifier()
    await put(store, clock, alert("loss is nan"))
    clock.advance(1)
    await put(store, clock, alert("gpu idle"))
    clock.advance(1.5)
    await put(store, clock, alert("other run stale", run="bert"))
    clock.advance(10)
    await put(store, clock, alert("much later"))

    assert await make_sender(store, notifier, clock, sleeps).drain_once() == 4
    combined, later = notifier.delivered
    assert combined.title.startswith("3 alerts")
    assert combined.reasons == (
        "[llama-ft] loss is nan reason",
        "[llama-ft] gpu idle reason",
        "[bert] other run stale reason",
    )
    assert combined.status_line is not None and combined.status_line.count("\n") == 1
    assert "--- gpu idle ---" in combined.log_lines
    assert later.title == "much later"


def test_only_neighbouring_alerts_for_the_same_chat_merge():
    at = T0
    items = [
        OutboxItem(1, alert("a"), at),
        OutboxItem(2, terminal("t"), at),
        OutboxItem(3, alert("b"), at),
        OutboxItem(4, alert("c", chat_id=42), at),
        OutboxItem(5, alert("d", chat_id=42), at + timedelta(seconds=2)),
    ]
    batches = plan_batches(items, coalesce_s=3.0)
    assert [b.item_ids for b in batches] == [(1,), (2,), (3,), (4, 5)]
    assert batches[3].message.chat_id == 42


def test_combining_one_alert_returns_it_unchanged():
    message = alert("a")
    assert combine_alerts([message]) is message


async def test_hold_lets_a_fresh_alert_wait_for_its_siblings(store, clock, sleeps):
    notifier = RecordingNotifier()
    await put(store, clock, alert("first"))
    sender = make_sender(store, notifier, clock, sleeps, hold_s=3.0)

    assert await sender.drain_once() == 0
    clock.advance(2)
    await put(store, clock, alert("second"))
    clock.advance(0.5)
    assert await sender.drain_once() == 0
    clock.advance(0.5)
    assert await sender.drain_once() == 2  # "second" rides along with "first", held or not
    assert len(notifier.delivered) == 1
    assert notifier.delivered[0].title == "2 alerts: first; second"


async def test_a_stopping_service_flushes_a_held_terminal_message(store, clock, sleeps):
    """A terminal message waits `hold_s` for a sibling run's; a serve stopped inside that wait
    sends it anyway (it would sit unsent until the next serve, perhaps never)."""
    notifier = RecordingNotifier()
    sender = make_sender(store, notifier, clock, sleeps, hold_s=60.0)
    await put(store, clock, alert("offline"))
    clock.advance(61)
    await put(store, clock, terminal("stopped (instance lost)"))

    assert await sender.drain_once() == 1  # the alert; the terminal message is held
    assert await sender.flush() == 1
    assert [m.title for m in notifier.delivered] == ["offline", "stopped (instance lost)"]
    assert (await store.outbox_counts())[1] == 0


async def test_a_flush_keeps_a_failed_deliverys_gate(store, clock, sleeps):
    notifier = RecordingNotifier()
    notifier.failures.append(DeliveryError("telegram: 500"))
    sender = make_sender(store, notifier, clock, sleeps, hold_s=60.0)
    await put(store, clock, terminal("done"))
    assert await sender.flush() == 0  # failed: deferred, the gate is up
    assert await sender.flush() == 0  # the gate stands: not hammered again on the way out
    assert notifier.delivered == []
    assert notifier.failures == []


async def test_a_flush_that_cannot_finish_gives_up_in_time_and_keeps_the_row(store, clock):
    class Hangs(RecordingNotifier):
        async def deliver(self, message: OutboundMessage) -> None:
            await asyncio.Event().wait()  # Telegram never answers

    sender = OutboxSender(store, Hangs(), clock)
    await put(store, clock, terminal("done"))

    assert await sender.flush(timeout_s=0.05) == 0
    assert await due_ids(store, clock()) == [1]  # still there for the next serve


async def test_run_drains_on_wake_and_stops_on_stop(store, clock, sleeps):
    notifier = RecordingNotifier()
    sender = make_sender(store, notifier, clock, sleeps, poll_s=30.0)
    stop, wake = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sender.run(stop, wake))
    await asyncio.sleep(0)

    await put(store, clock, terminal("one"))
    wake.set()
    for _ in range(100):
        if notifier.delivered:
            break
        await asyncio.sleep(0.01)
    assert [m.title for m in notifier.delivered] == ["one"]

    stop.set()
    await asyncio.wait_for(task, timeout=5)


class MarksFail:
    """The real store, except that marking a row sent fails (as on a full disk) while `full`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.full = True

    async def pending(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        return await self.store.pending(now, limit)

    async def mark_sent(self, item_id: int, at: datetime) -> bool:
        if self.full:
            raise StoreFull("disk full writing db while marking a message sent")
        return await self.store.mark_sent(item_id, at)

    async def defer(self, item_id: int, until: datetime, error: str) -> None:
        await self.store.defer(item_id, until, error)


async def test_a_message_delivered_but_not_marked_is_never_sent_again(store, clock, sleeps):
    notifier = RecordingNotifier()
    await put(store, clock, terminal("one"))
    failing = MarksFail(store)
    sender = OutboxSender(failing, notifier, clock, min_gap_s=0.0)

    for _ in range(30):  # a minute of rounds with the disk full
        assert await sender.drain_once() == 0
        clock.advance(2.0)
    await put(store, clock, terminal("two"))  # written before the disk filled, say
    await sender.drain_once()
    assert [m.title for m in notifier.delivered] == ["one", "two"]
    assert sender.unmarked == 2

    failing.full = False  # space again: the marks go through, nothing is sent twice
    assert await sender.drain_once() == 2
    assert await store.outbox_counts() == (2, 0)
    assert [m.title for m in notifier.delivered] == ["one", "two"]
    assert sender.unmarked == 0


async def test_refused_credentials_hold_every_message_until_a_token_works(store, clock, sleeps):
    notifier = RecordingNotifier()
    for name in ("one", "two", "three"):
        await put(store, clock, terminal(name))
    refused = DeliveryError("telegram refused the token", credentials_refused=True)
    notifier.failures = [refused] * 3
    sender = make_sender(store, notifier, clock, sleeps)

    for _ in range(3):
        assert await sender.drain_once() == 0
        assert sender.credentials_refused is refused
        assert await due_ids(store, clock()) == [1, 2, 3]  # due at once for a restart
        assert await sender.drain_once() == 0  # this process waits a minute between tries
        clock.advance(60.0)
    assert await sender.drain_once() == 3
    assert [m.title for m in notifier.delivered] == ["one", "two", "three"]
    assert sender.credentials_refused is None


async def test_messages_an_older_version_deferred_for_a_refused_token_are_due_again(
    db_path: Path, clock: FakeClock
) -> None:
    async with await Store.open(db_path) as store:
        refused = await put(store, clock, terminal("refused"))
        blocked = await put(store, clock, terminal("blocked"))
        day = clock() + timedelta(days=1)
        # what sleepwatch before migration 003 stored for a 401 and for a 403
        await store.defer(
            refused, day, "permanent: telegram refused: Telegram server says - Unauthorized"
        )
        await store.defer(
            blocked,
            day,
            "permanent: telegram refused: Telegram server says - "
            "Forbidden: bot was blocked by the user",
        )
    # migration 003 as a store at version 2 gets it (setting user_version back to 2 would
    # re-run the later migrations too, whose ALTER TABLEs cannot run twice)
    migration = next(m for m in load_migrations() if m.version == 3)
    with closing(sqlite3.connect(db_path)) as conn:
        for statement in migration.statements:
            conn.execute(statement)
        conn.commit()
    async with await Store.open(db_path) as store:
        assert await due_ids(store, clock()) == [refused]


async def test_a_failed_delivery_whose_defer_cannot_be_written_still_waits(store, clock, sleeps):
    notifier = RecordingNotifier()
    await put(store, clock, terminal("one"))
    notifier.failures = [DeliveryError("telegram unavailable")]
    failing = MarksFail(store)

    async def defer_fails(item_id: int, until: datetime, error: str) -> None:
        raise StoreFull("disk full writing db while deferring a message")

    failing.defer = defer_fails  # type: ignore[method-assign]
    sender = OutboxSender(failing, notifier, clock, min_gap_s=0.0)
    with pytest.raises(StoreFull):
        await sender.drain_once()
    assert sender.not_before == clock() + timedelta(seconds=backoff_s(0))
    assert await sender.drain_once() == 0  # no new try (and no request) before the backoff
    assert notifier.delivered == [] and notifier.failures == []


async def test_a_terminal_message_stamped_with_its_end_never_goes_before_its_runs_retry(
    store, clock
):
    # one check saw the retry and, after it, the end: the end is stamped when the run ended
    ended_at = clock()
    clock.advance(30)
    retry = OutboundMessage(kind=MessageKind.ALERT, title="attempt 2/3 started", run="a")
    await store.enqueue(retry, dedupe_key=None, at=clock())
    end_a = OutboundMessage(kind=MessageKind.TERMINAL, title="a: done", run="a")
    await store.enqueue(end_a, dedupe_key=None, at=ended_at)
    # runs ending together are still told in the order they ended
    end_b = OutboundMessage(kind=MessageKind.TERMINAL, title="b: done", run="b")
    await store.enqueue(end_b, dedupe_key=None, at=ended_at - timedelta(seconds=5))

    titles = [item.message.title for item in await store.pending(clock())]
    assert titles == ["b: done", "attempt 2/3 started", "a: done"]
