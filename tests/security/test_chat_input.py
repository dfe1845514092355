"""Hostile chat input against the real dispatcher, the real Control and a real store: only the
allow-listed chat is answered (every refused update audited); shell metacharacters, SQL, huge
arguments, unicode and path-like run names each get one clear answer and reach no shell."""

from __future__ import annotations

import io
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.commands import Extend, Kill, Mute, Status, Teardown, UsageError, parse_command
from bot.confirm import Confirmations
from bot.telegram import build_bot, build_dispatcher
from core.config import Config, RunConfig, WatcherConfig
from core.console import ConsoleNotifier
from core.local import LocalTransport
from core.models import RunRecord
from core.providers import NoneProvider
from core.service import Service
from core.store import Store
from tests.conftest import FakeClock
from tests.fixtures.fake_telegram import FakeTelegram, callback_update, message_update
from tests.security.telegram_html import assert_telegram_html

RUN = "bot-run"
CHAT = 1001
STRANGER = 666
TABLES = {"runs", "checks", "alerts", "outbox", "audit", "meta"}
CLEAR_ANSWERS = ("not a run name", "usage:", "not a duration", "No run named", "not a command")


@dataclass
class Bench:
    dp: Dispatcher
    bot: Bot
    fake: FakeTelegram
    store: Store
    clock: FakeClock
    db: Path
    updates: int = 0

    async def feed(self, update: dict[str, Any]) -> None:
        self.updates += 1
        doc = {"update_id": self.updates, **update}
        await self.dp.feed_update(self.bot, Update.model_validate(doc, context={"bot": self.bot}))

    async def say(self, text: str, chat: int = CHAT) -> list[str]:
        """Send `text`; the texts of the messages sent back."""
        before = len(self.fake.sent)
        date = int(self.clock.now.timestamp())
        await self.feed(message_update(chat, text, date=date, message_id=self.updates + 1))
        return [m["text"] for m in self.fake.sent[before:]]

    def tables(self) -> set[str]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {row[0] for row in rows}


@pytest_asyncio.fixture
async def bench(
    tmp_path: Path, fake_telegram: FakeTelegram, clock: FakeClock
) -> AsyncIterator[Bench]:
    run_dir = tmp_path / "runs" / RUN
    config = Config(
        watcher=WatcherConfig(state_dir=tmp_path / "state", python=sys.executable),
        runs=[RunConfig(name=RUN, local=True, run_dir=str(run_dir), command="true")],
    )
    db = tmp_path / "state" / "sleepwatch.sqlite3"
    store = await Store.open(db)
    await store.upsert_run(RunRecord(name=RUN, run_dir=str(run_dir), launched_at=clock.now))
    local = LocalTransport()
    service = Service(
        config,
        store,
        ConsoleNotifier(io.StringIO()),
        lambda record: NoneProvider(),
        lambda record: local,
        clock,
        emit=lambda line: None,
    )
    dp = build_dispatcher(service.control, store, [CHAT], clock, Confirmations())
    bot = build_bot(SecretStr(fake_telegram.token), fake_telegram.base_url)
    try:
        yield Bench(dp, bot, fake_telegram, store, clock, db)
    finally:
        await bot.session.close()
        await store.close()


def stranger_updates(nonce_data: str) -> list[dict[str, Any]]:
    user = {"id": STRANGER, "is_bot": False, "first_name": "Mallory"}
    group = {"id": -100123, "type": "supergroup", "title": "g"}
    return [
        message_update(STRANGER, "/runs", date=0),
        message_update(STRANGER, "/teardown bot-run", date=0),
        callback_update(STRANGER, nonce_data, message_id=100),  # a button it saw somehow
        # an allow-listed person writing from a chat that is not listed
        {"message": {**message_update(CHAT, "/runs", date=0)["message"], "chat": group}},
        {"edited_message": message_update(STRANGER, "/kill bot-run", date=0)["message"]},
        {"message": {"message_id": 7, "date": 0, "chat": {"id": STRANGER, "type": "private"},
                     "from": user, "sticker": {"file_id": "x", "file_unique_id": "y",
                     "type": "regular", "width": 1, "height": 1, "is_animated": False,
                     "is_video": False}}},
        {"inline_query": {"id": "9", "from": user, "query": "/kill bot-run", "offset": ""}},
    ]  # fmt: skip


async def test_only_the_allow_listed_chat_is_answered_and_every_refusal_is_audited(
    bench: Bench,
) -> None:
    (prompt,) = await bench.say(f"/kill {RUN}")
    assert "Stop run" in prompt
    confirm = bench.fake.sent[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    calls = len(bench.fake.calls)
    updates = stranger_updates(confirm)

    for update in updates:
        await bench.feed(update)

    assert len(bench.fake.calls) == calls  # not one call to Telegram: no answer of any kind
    rows = [r for r in await bench.store.audit_rows(50) if r["verdict"] == "refused"]
    assert len(rows) == len(updates)
    refused = [(r["chat_id"], r["command"]) for r in reversed(rows)]
    assert refused[:3] == [
        (STRANGER, "/runs"),
        (STRANGER, "/teardown bot-run"),
        (STRANGER, f"button {confirm}"),
    ]
    assert (-100123, "/runs") in refused
    assert (STRANGER, "<sticker>") in refused
    assert refused.count((STRANGER, "/kill bot-run")) == 1  # the edited message, by its text
    assert (None, "<inline_query>") in refused
    record = await bench.store.get_run(RUN)
    assert record is not None and record.live  # the stranger's press stopped nothing
    # ...and the question is still open for the chat it was asked in
    await bench.feed(callback_update(CHAT, confirm.replace(":ok:", ":no:"), message_id=100))
    assert bench.fake.edits[-1]["text"] == f"Cancelled: /kill {RUN}"


def hostile_commands(marker: Path) -> list[str]:
    touch = f"touch${{IFS}}{marker}"
    return [
        f"/status {RUN};{touch}",
        f"/status $({touch})",
        f"/status `{touch}`",
        f"/kill {RUN}&&{touch}",
        f"/status {RUN}|{touch}",
        f"/mute {RUN} 1h;{touch}",
        f"/extend {RUN} $({touch})",
        f"/teardown {RUN}>{marker}",
        f"/status {RUN}\n{touch}",
        "/status x';DROP TABLE runs;--",
        '/status x";DELETE FROM audit;--',
        "/mute %' 1h",
        "/extend ' OR '1'='1 1h",
        "/status ../../etc/passwd",
        "/status /tmp/x",
        "/kill ..",
        "/teardown ~root",
        "/status -rf",
        "/status " + "a" * 4000,
        f"/mute {RUN} " + "9" * 4000 + "h",
        "/" + "x" * 4000,
        "/status a" * 600,
        "/status ботран",
        "/status 🦙",
        "/status bot\u202e-run",
        "/status bot\u200b-run",
        "/ѕtatus bot-run",  # a Cyrillic ѕ
        "/status <b>bot</b>&amp;",
        "/status bot-run\x00",
    ]


async def test_hostile_commands_get_one_clear_answer_and_reach_no_shell(
    bench: Bench, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    for text in hostile_commands(marker):
        replies = await bench.say(text)
        assert len(replies) == 1, (text, replies)
        assert_telegram_html(replies[0])
        assert len(replies[0]) < 600, (text, replies[0])
        assert any(clear in replies[0] for clear in CLEAR_ANSWERS), (text, replies[0])

    assert not marker.exists()
    assert bench.tables() >= TABLES
    record = await bench.store.get_run(RUN)
    assert record is not None and record.live
    assert (record.muted_until, record.deadline_at) == (None, None)
    rows = await bench.store.audit_rows(100)
    assert len(rows) == len(hostile_commands(marker))
    assert {r["verdict"] for r in rows} <= {"usage", "unknown_run"}
    assert all(len(str(r["command"])) <= 256 for r in rows)


async def test_a_name_that_looks_like_a_prefix_query_matches_nothing(bench: Bench) -> None:
    (reply,) = await bench.say("/status a..b")
    assert reply == f"No run named a..b. Known runs: {RUN}."
    (reply,) = await bench.say("/status %")
    assert "not a run name" in reply


_SHELL_OR_PATH = set(";&|$`<>()'\"\\/ \t\n*?~!{}[]#=%")


@given(st.text(max_size=80))
def test_a_parsed_run_name_never_holds_shell_or_path_characters(tail: str) -> None:
    for text in (f"/status {tail}", f"/kill {tail}", f"/mute {tail} 1h", f"/extend {tail} 2h"):
        try:
            command = parse_command(text)
        except UsageError as exc:
            assert len(str(exc)) < 1200
            continue
        if isinstance(command, Status | Kill | Teardown | Mute | Extend):
            assert not set(command.run) & _SHELL_OR_PATH, command
            assert not command.run.startswith(("-", ".")) and len(command.run) <= 64


@pytest.mark.parametrize("text", ["/mute bot-run 1d1s", "/mute bot-run 0m", "/extend bot-run 8d"])
def test_durations_out_of_bounds_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_command(text)
