"""The Telegram bot end to end against the REAL watcher: a local run under the real supervisor,
a real Service (scheduler, wait channel, outbox) with the Telegram notifier, and the aiogram
dispatcher long-polling the fake Bot API on 127.0.0.1 for the chat's commands."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import shlex
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiogram import Bot
from pydantic import SecretStr

from bot.confirm import Confirmations
from bot.render import fmt_at
from bot.telegram import TelegramNotifier, build_bot, build_dispatcher, start_polling_resilient
from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig, WatcherConfig
from core.launch import launch, plan_launch
from core.local import LocalTransport
from core.providers import NoneProvider
from core.runtime import utc_now
from core.service import Service
from core.store import Store
from tests.conftest import FakeClock
from tests.fixtures.fake_telegram import FakeTelegram, callback_update, message_update
from tests.security.telegram_html import assert_telegram_html

RUN = "bot-run"
CHAT = 1001
STRANGER = 666
STEPS = 300  # 0.1 s each: about 30 s unless stopped
WAIT_S = 30.0
STATUS_LINE = re.compile(
    rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ running 1/3 \d+/{STEPS} \S+ \S+ - {RUN}"
)

TRAINER = """
import sys, time
steps = int(sys.argv[1])
for step in range(1, steps + 1):
    time.sleep(0.1)
    print(f"step {step}/{steps} loss {1 / step:.4f}", flush=True)
    if step == 6:  # a caught error the run survives: the watcher alerts on the marker
        print("Traceback (most recent call last):")
        print('  File "<train>", line 6, in <module>')
        print("\\x1b[31mRuntimeError: loss is <nan> & </pre> broke\\x1b[0m", flush=True)
print("done", flush=True)
"""


def make_config(tmp_path: Path) -> Config:
    trainer = tmp_path / "train.py"
    trainer.write_text(TRAINER)
    run = RunConfig(
        name=RUN,
        local=True,
        run_dir=str(tmp_path / "runs" / RUN),
        command=f"{shlex.quote(sys.executable)} {shlex.quote(str(trainer))} {STEPS}",
        env={"PYTHONUNBUFFERED": "1"},
        max_attempts=3,
        backoff_s=0.5,
        heartbeat_s=0.5,
        dph_total=2.10,
    )
    return Config(
        watcher=WatcherConfig(state_dir=tmp_path / "state", python=sys.executable, wait_timeout=20),
        cadence=CadenceConfig(scale=1 / 60),
        thresholds=ThresholdsConfig(heartbeat_stale=5, stall_after=5, soft_hold=30),
        runs=[run],
    )


@dataclass
class Chat:
    """The person's phone: sends updates through the fake Bot API, reads what came back."""

    fake: FakeTelegram
    clock: FakeClock
    store: Store
    service: Service
    run_dir: Path
    _message_ids: int = 1

    def say(self, text: str, chat: int = CHAT) -> None:
        self._message_ids += 1
        date = int(self.clock.now.timestamp())
        self.fake.push_update(message_update(chat, text, date=date, message_id=self._message_ids))

    def press(self, data: str, message_id: int) -> None:
        self.fake.push_update(callback_update(CHAT, data, message_id=message_id))

    async def reply(self, text: str, expect: str) -> dict[str, Any]:
        """Send `text`; the first new message that contains `expect`."""
        seen = len(self.fake.sent)
        self.say(text)
        return await self.sent_containing(expect, after=seen)

    async def sent_containing(self, expect: str, *, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.fake.sent[after:] if expect in m["text"]), None)

        await until(lambda: found() is not None)
        message = found()
        assert message is not None
        assert message["chat_id"] == CHAT and message["parse_mode"] == "HTML"
        assert_telegram_html(message["text"])
        return message

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "state.json").read_text()))


async def until(condition: Callable[[], object], timeout_s: float = WAIT_S) -> None:
    """Poll `condition` (a plain or an async callable) until it is truthy."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def chat(tmp_path: Path, fake_telegram: FakeTelegram) -> AsyncIterator[Chat]:
    config = make_config(tmp_path)
    run = config.runs[0]
    # The dispatcher's clock stands still (answers are exact); the watcher runs on real time.
    clock = FakeClock(utc_now().replace(microsecond=0))
    local = LocalTransport()
    bot: Bot = build_bot(SecretStr(fake_telegram.token), fake_telegram.base_url)
    store = await Store.open(tmp_path / "state" / "sleepwatch.sqlite3")
    service = Service(
        config,
        store,
        TelegramNotifier(bot, [CHAT]),
        lambda record: NoneProvider(),
        lambda record: local,
        utc_now,
        emit=lambda line: None,
        min_gap_s=0.0,
        hold_s=0.0,
    )
    stop = asyncio.Event()
    polling: asyncio.Task[None] | None = None
    record = None
    try:
        plan = await plan_launch(run, config, None, utc_now)
        record = await launch(plan, run, config, store, local, None)
        await service.start()
        dp = build_dispatcher(service.control, store, [CHAT], clock, Confirmations())
        polling = asyncio.create_task(start_polling_resilient(bot, dp, stop))
        yield Chat(fake_telegram, clock, store, service, Path(run.run_dir))
    finally:
        stop.set()
        if polling is not None:
            await asyncio.wait_for(polling, 10)
        if record is not None:  # never leave a trainer behind, whatever failed
            with contextlib.suppress(Exception):
                await service.watcher.exits.ctl(record, "stop")
        await service.stop()
        await bot.session.close()
        await store.close()


async def test_every_command_works_against_a_run_the_real_watcher_watches(chat: Chat) -> None:
    # the watcher's alert: what happened in words, the status line, the reason, the log
    # escaped in <pre>; silent (the trainer runs on: nobody needs waking)
    sent = await chat.sent_containing("error marker in the log (quoted below)")
    alert = sent["text"]
    first, second = alert.split("\n")[:2]
    assert first == f"<b>⚠ {RUN}: error in the log, the run goes on</b>"
    assert re.fullmatch(rf"<code>{STATUS_LINE.pattern}</code>", second), second
    assert sent["disable_notification"] is True
    assert "RuntimeError: loss is &lt;nan&gt; &amp; &lt;/pre&gt; broke" in alert
    assert "in &lt;module&gt;" in alert and "\x1b" not in alert

    runs = (await chat.reply("/runs", "Runs: 1 live"))["text"]
    assert STATUS_LINE.search(runs), runs
    assert "live · $0.00 so far at $2.10/h" in runs

    status = (await chat.reply(f"/status {RUN[:4]}", f"<b>{RUN}</b>"))["text"]
    assert STATUS_LINE.search(status.split("\n")[0]), status
    assert "next check: " in status and "cadence: every " in status
    assert re.search(r"<pre>(.*\n)*step \d+/300 loss", status), status

    now = chat.clock.now
    mute = (await chat.reply(f"/mute {RUN} 2h", "muted until"))["text"]
    muted = await chat.store.get_run(RUN)
    assert muted is not None and muted.muted_until == now + timedelta(hours=2)
    assert mute == f"Soft alerts of {RUN} muted until {fmt_at(now + timedelta(hours=2), now)}."

    # a run without max_hours has no deadline: /extend says so instead of inventing one
    refused = (await chat.reply(f"/extend {RUN} 1h30m", "no deadline"))["text"]
    assert "nothing to extend" in refused
    assert (await chat.store.get_run(RUN)).deadline_at is None  # type: ignore[union-attr]
    await chat.store.set_human_fields(RUN, deadline_at=now + timedelta(hours=1))
    extend = (await chat.reply(f"/extend {RUN} 1h30m", "Deadline of"))["text"]
    extended = await chat.store.get_run(RUN)
    new_deadline = now + timedelta(hours=1, minutes=90)
    assert extended is not None and extended.deadline_at == new_deadline
    assert extend == f"Deadline of {RUN} is now {fmt_at(new_deadline, now)}."

    # a stranger: no answer at all, one audit row
    sent = len(chat.fake.sent)
    chat.say(f"/kill {RUN}", chat=STRANGER)
    await until(lambda: _refused_rows(chat.store))
    assert await _refused_rows(chat.store) == [(STRANGER, f"/kill {RUN}")]
    assert chat.fake.sent[sent:] == []

    # /kill asks; Cancel leaves the run running
    prompt = await chat.reply(f"/kill {RUN}", "Stop run")
    cancel = prompt["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    chat.press(cancel, prompt["message_id"])
    await until(lambda: any("Cancelled" in e["text"] for e in chat.fake.edits))
    assert chat.state()["status"] == "running"

    # a second /kill, confirmed: the run stops, once
    prompt = await chat.reply(f"/kill {RUN}", "Stop run")
    confirm = prompt["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert chat.state()["status"] == "running"
    chat.press(confirm, prompt["message_id"])
    await until(lambda: any("stop sent" in e["text"] for e in chat.fake.edits))
    await asyncio.wait_for(chat.service.finished[RUN].wait(), WAIT_S)
    assert (chat.state()["status"], chat.state()["outcome"]) == ("stopped", "killed")
    final = await chat.store.get_run(RUN)
    assert final is not None and (final.status, final.live) == ("stopped", False)
    terminal = (await chat.sent_containing(f"{RUN}: stopped (killed)"))["text"]
    assert "no cloud instance (local run)" in terminal

    answers = len(chat.fake.callback_answers)
    chat.press(confirm, prompt["message_id"])  # the same button again
    await until(lambda: len(chat.fake.callback_answers) > answers)
    assert chat.fake.callback_answers[-1]["text"] == "This button is no longer valid."
    supervisor_log = (chat.run_dir / "supervisor.log").read_text()
    assert supervisor_log.count("ctl stop received") == 1

    teardown = await chat.reply(f"/teardown {RUN}", "no cloud instance")
    assert teardown.get("reply_markup") is None
    assert "nothing to destroy" in teardown["text"]
    alerts = [m for m in chat.fake.sent if "error marker" in m["text"]]
    assert len(alerts) == 1


async def _refused_rows(store: Store) -> list[tuple[object, object]]:
    rows = await store.audit_rows(50)
    return [(r["chat_id"], r["command"]) for r in rows if r["verdict"] == "refused"]
