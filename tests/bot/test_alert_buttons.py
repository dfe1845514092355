"""Actions at a thumb: a loud alert's buttons through aiogram's real client, long-polling the
fake Bot API (callback_query updates), with the store reopened between presses as a restarted
`serve` reopens it: a button still works afterwards, or says clearly that it expired."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from bot.telegram import TelegramNotifier, build_bot, build_dispatcher, start_polling_resilient
from core.models import MessageKind, OutboundMessage
from core.store import Store
from core.topics import Action, Topic
from tests.bot.conftest import ALLOWED_CHAT, LLAMA_LINE, OTHER_ALLOWED_CHAT, FakeControl
from tests.conftest import FakeClock
from tests.fixtures.fake_telegram import FakeTelegram, callback_update

WAIT_S = 20.0
ALERT = OutboundMessage(
    kind=MessageKind.ALERT,
    title="⚠ llama-ft needs you: stalled again",
    run="llama-ft",
    status_line=LLAMA_LINE,
    reasons=("silent 20m, GPUs idle; already recovered once, needs a human",),
    topic=Topic.NEEDS_HUMAN,
    loud=True,
    actions=(Action.KILL, Action.TEARDOWN, Action.EXTEND, Action.MUTE, Action.STATUS),
)


@contextlib.asynccontextmanager
async def serve(
    db: Path, fake: FakeTelegram, control: FakeControl, clock: FakeClock, **dispatch: Any
) -> AsyncIterator[tuple[Store, TelegramNotifier]]:
    """One life of `serve`'s chat: the store opened, the notifier, the dispatcher polling."""
    store = await Store.open(db)
    bot = build_bot(SecretStr(fake.token), fake.base_url)
    dp = build_dispatcher(control, store, [ALLOWED_CHAT, OTHER_ALLOWED_CHAT], clock, **dispatch)
    stop = asyncio.Event()
    polling = asyncio.create_task(start_polling_resilient(bot, dp, stop))
    try:
        yield store, TelegramNotifier(bot, [ALLOWED_CHAT], buttons=store, clock=clock)
    finally:
        stop.set()
        await asyncio.wait_for(polling, 10)
        await bot.session.close()
        await store.close()


async def until(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.02)


def buttons(message: dict[str, Any]) -> dict[str, str]:
    rows = message["reply_markup"]["inline_keyboard"]
    return {b["text"]: b["callback_data"] for row in rows for b in row}


async def press(
    fake: FakeTelegram, message: dict[str, Any], label: str, chat: int = ALLOWED_CHAT
) -> dict[str, Any]:
    """Press a button and wait for its answer (answerCallbackQuery)."""
    answered = len(fake.callback_answers)
    data = buttons(message)[label]
    fake.push_update(callback_update(chat, data, message_id=message["message_id"]))
    await until(lambda: len(fake.callback_answers) > answered)
    return fake.callback_answers[-1]


async def test_a_loud_alerts_buttons_work_across_serve_restarts(
    tmp_path: Path, fake_telegram: FakeTelegram, control: FakeControl, clock: FakeClock
) -> None:
    db = tmp_path / "sleepwatch.sqlite3"
    async with serve(db, fake_telegram, control, clock) as (_, notifier):
        await notifier.deliver(ALERT)
    (alert,) = fake_telegram.sent
    assert alert["disable_notification"] is False  # loud: it buzzes
    rows = [[b["text"] for b in row] for row in alert["reply_markup"]["inline_keyboard"]]
    assert rows == [["Kill", "Teardown"], ["Extend 2h", "Mute 1h", "Status"]]
    assert all(len(data.encode()) <= 64 for data in buttons(alert).values())

    # restarted: Teardown asks to confirm (destructive), nothing is destroyed yet
    async with serve(db, fake_telegram, control, clock):
        assert (await press(fake_telegram, alert, "Teardown"))["text"] == "Teardown"
        await until(lambda: len(fake_telegram.sent) == 2)
    prompt = fake_telegram.sent[1]
    assert "Destroy instance 8812345 of run <b>llama-ft</b> now?" in prompt["text"]
    assert list(buttons(prompt)) == ["Confirm", "Cancel"]
    assert control.actions == []

    # restarted again: the pending confirmation was stored, and Confirm acts once
    async with serve(db, fake_telegram, control, clock):
        await press(fake_telegram, prompt, "Confirm")
        await until(lambda: any("destroyed (verified)" in e["text"] for e in fake_telegram.edits))
        assert control.actions == [("teardown", "llama-ft")]
        again = await press(fake_telegram, prompt, "Confirm")
        assert again["text"] == "This button is no longer valid."
        assert control.actions == [("teardown", "llama-ft")]

        # the alert's non-destructive buttons act at once, with the typed command's answer
        await press(fake_telegram, alert, "Mute 1h")
        await until(lambda: "muted until" in fake_telegram.sent[-1]["text"])
        await press(fake_telegram, alert, "Status")
        await until(lambda: fake_telegram.sent[-1]["text"].startswith(f"<code>{LLAMA_LINE}"))
        assert control.actions == [("teardown", "llama-ft"), ("mute", "llama-ft")]

        # a week later the alert's buttons say so, and do nothing
        clock.advance(timedelta(days=8).total_seconds())
        late = await press(fake_telegram, alert, "Kill")
        assert late["text"].startswith("This button expired: its alert was sent ")
        assert "/status llama-ft" in late["text"]
        assert len(control.actions) == 2


async def test_a_button_works_only_in_the_chat_it_was_sent_to(
    tmp_path: Path, fake_telegram: FakeTelegram, control: FakeControl, clock: FakeClock
) -> None:
    async with serve(tmp_path / "db.sqlite3", fake_telegram, control, clock) as (store, notifier):
        await notifier.deliver(ALERT)
        (alert,) = fake_telegram.sent
        other = await press(fake_telegram, alert, "Extend 2h", chat=OTHER_ALLOWED_CHAT)
        assert other["text"] == "This button is no longer valid."
        assert control.actions == []
        await press(fake_telegram, alert, "Extend 2h")
        await until(lambda: "Deadline of llama-ft is now" in fake_telegram.sent[-1]["text"])
        assert control.actions == [("extend", "llama-ft")]
        verdicts = [(r["command"], r["verdict"]) for r in await store.audit_rows(5)]
        assert verdicts[:2] == [("button extend llama-ft", "ok"), ("button extend", "expired")]


async def test_a_silent_message_has_no_buttons_and_times_are_in_the_persons_zone(
    tmp_path: Path, fake_telegram: FakeTelegram, control: FakeControl, clock: FakeClock
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    async with serve(tmp_path / "db.sqlite3", fake_telegram, control, clock, tz=berlin) as (
        _,
        notifier,
    ):
        quiet = OutboundMessage(
            kind=MessageKind.ALERT, title="↻ self-healed", run="llama-ft", loud=False
        )
        await notifier.deliver(quiet)
        assert fake_telegram.sent[0].get("reply_markup") is None
        assert fake_telegram.sent[0]["disable_notification"] is True
        await notifier.deliver(ALERT)
        await press(fake_telegram, fake_telegram.sent[1], "Mute 1h")
        await until(lambda: "muted until" in fake_telegram.sent[-1]["text"])
    # T0 is 03:12:09 UTC: an hour later is 05:12:09 in Berlin (CET, UTC+1)
    assert fake_telegram.sent[-1]["text"] == "Soft alerts of llama-ft muted until 05:12:09 CET."
