"""Hostile log text through the real supervisor, the real probe and Watcher.check, rendered for
Telegram and sent to the fake Bot API: ANSI escapes, NULs, invalid UTF-8, HTML that would break
Telegram's parser, and a 100 MB line without a newline (the probe stays bounded, the alert
stays under 4096 characters)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest_asyncio
from aiogram import Bot
from pydantic import SecretStr

from bot.render import render_status
from bot.telegram import TelegramNotifier, build_bot
from core.config import Config
from core.console import render_plain
from core.control import WatcherControl
from core.local import LocalTransport
from core.models import MessageKind, OutboundMessage
from core.run_settings import settings_for
from core.runtime import utc_now
from core.store import Store
from core.supervisor_client import supervisor_argv
from core.watcher import Watcher
from tests.fixtures.fake_telegram import FakeTelegram
from tests.security.localrun import launch_local, local_config, wait_for_file_containing
from tests.security.telegram_html import assert_telegram_html

CHAT = 1001
PROBE_BOUND = 200_000  # 64 KiB of new log + 40 tail lines of at most 500 characters, as JSON

HOSTILE = r"""
import sys, time
out = sys.stdout.buffer
out.write(b"step 1/100 loss 2.0\n")
out.write(b"\x1b[1;31mcolour\x1b[0m \x1b]0;window title\x07 \x1b[2Jnul\x00byte bad\xff\xfeutf8\n")
out.write(b"</pre><b>bold & <a href='x'>link</a> <tg-spoiler>\n")
out.write(b"Traceback (most recent call last):\n")
out.write(b'  File "<train>", line 3, in <module>\n')
out.write(b"RuntimeError: \x1b[31m<script>\x00\xc3\x28 </code>&nbsp;\x1b[0m\n")
out.write(b"progress 10%\r\x1b[Kprogress 50%\rprogress 90%\n")
out.flush()
time.sleep(120)
"""

HUGE_LINE = r"""
import sys, time
out = sys.stdout.buffer
out.write(b"step 1/10\n")
chunk = b"x" * (1 << 20)
for _ in range(100):
    out.write(chunk)
out.write(b" CUDA error: an illegal memory access <was> encountered & \x1b[0m<")
out.flush()
time.sleep(120)
"""


@dataclass
class WatcherClock:
    """Real time, moved on by `skip`: the hold of an error marker passes without a sleep."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@dataclass
class Scene:
    config: Config
    store: Store
    watcher: Watcher
    local: LocalTransport
    bot: Bot
    fake: FakeTelegram
    log: Path
    clock: WatcherClock

    async def check_past_the_error_hold(self) -> None:
        """An error marker in a live attempt is held (is the attempt dying of it?), then told
        by the first check after the hold that finds the trainer still running."""
        assert await self.watcher.check("hostile") is not None
        assert await self.store.pending(utc_now()) == []
        self.clock.offset += timedelta(minutes=2)
        assert await self.watcher.check("hostile") is not None

    async def alert_text(self) -> str:
        """The one message the check enqueued, delivered to the fake Bot API as HTML."""
        (item,) = await self.store.pending(self.clock())
        assert item.message.kind is MessageKind.ALERT
        await TelegramNotifier(self.bot, [CHAT]).deliver(item.message)
        plain = render_plain(item.message)
        assert "\x1b" not in plain and "\x00" not in plain  # the console gets clean text too
        text = str(self.fake.sent[-1]["text"])
        assert_telegram_html(text)
        return text


async def scene(tmp_path: Path, trainer: str, fake: FakeTelegram) -> AsyncIterator[Scene]:
    config = local_config(tmp_path, "hostile", trainer)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    local = LocalTransport()
    clock = WatcherClock()
    watcher = Watcher(store, config, lambda r: local, None, clock, emit=lambda line: None)
    bot = build_bot(SecretStr(fake.token), fake.base_url)
    record = None
    try:
        record = await launch_local(config, store, local)
        log = Path(record.run_dir) / "attempts" / "1.log"
        yield Scene(config, store, watcher, local, bot, fake, log, clock)
    finally:
        if record is not None:
            await watcher.exits.ctl(record, "stop")
        await bot.session.close()
        await store.close()


@pytest_asyncio.fixture
async def hostile(tmp_path: Path, fake_telegram: FakeTelegram) -> AsyncIterator[Scene]:
    async for made in scene(tmp_path, HOSTILE, fake_telegram):
        yield made


@pytest_asyncio.fixture
async def huge(tmp_path: Path, fake_telegram: FakeTelegram) -> AsyncIterator[Scene]:
    async for made in scene(tmp_path, HUGE_LINE, fake_telegram):
        yield made


async def test_escapes_nuls_bad_utf8_and_html_reach_telegram_escaped(hostile: Scene) -> None:
    await wait_for_file_containing(hostile.log, b"progress 90%")

    await hostile.check_past_the_error_hold()
    text = await hostile.alert_text()

    assert "colour" in text and "window title" not in text and "nulbyte" in text
    assert "bad\ufffd\ufffdutf8" in text
    assert "&lt;/pre&gt;&lt;b&gt;bold &amp; &lt;a href='x'&gt;link&lt;/a&gt;" in text
    assert "RuntimeError: &lt;script&gt;\ufffd( &lt;/code&gt;&amp;nbsp;" in text
    assert "progress 90%" in text and "progress 10%" not in text


async def test_status_shows_the_same_log_tail_safely(hostile: Scene) -> None:
    await wait_for_file_containing(hostile.log, b"progress 90%")
    await hostile.watcher.check("hostile")
    control = WatcherControl(hostile.store, hostile.watcher, utc_now)

    view = await control.view("hostile", utc_now())
    text = render_status(view, utc_now())

    assert_telegram_html(text)
    assert "&lt;tg-spoiler&gt;" in text and "&lt;script&gt;" in text


async def test_a_100_mb_line_keeps_the_probe_bounded_and_the_alert_short(huge: Scene) -> None:
    await wait_for_file_containing(huge.log, b"encountered")
    assert huge.log.stat().st_size > 100 * (1 << 20)
    run_dir = huge.config.runs[0].run_dir
    root = settings_for(huge.config, "hostile").remote_root
    python = huge.config.watcher.python

    for extra in (["--max-bytes", "65536"], ["--max-bytes", "0", "--tail-lines", "15"]):
        argv = supervisor_argv(python, root, ["probe", "--run-dir", run_dir, *extra])
        result = await huge.local.run(argv, timeout_s=30)
        assert result.exit_status == 0, result.stderr
        assert len(result.stdout) < PROBE_BOUND
        assert json.loads(result.stdout)["state"]["status"] == "running"

    await huge.check_past_the_error_hold()
    text = await huge.alert_text()
    assert text.startswith("<b>") and text.split("\n")[1].startswith("<code>")
    assert " running 1/1 " in text.split("\n")[1]
    assert "CUDA error: an illegal memory access &lt;was&gt; encountered &amp;" in text
    record = await huge.store.get_run("hostile")
    assert record is not None and record.log_offset > 100 * (1 << 20)  # skipped, not read


def test_a_message_of_nothing_but_hostile_lines_still_fits() -> None:
    from bot.render import render_message

    line = "<\x00\x1b[31m&\xff" * 300
    message = OutboundMessage(
        kind=MessageKind.ALERT,
        title="⚠ r: " + "<b>" * 500,
        run="r",
        status_line="2026-11-28T03:12:09Z running 1/3 - - - - r",
        reasons=tuple("&<>" * 300 for _ in range(20)),
        log_lines=tuple(line for _ in range(10_000)),
    )
    text = render_message(message)
    assert_telegram_html(text)
    assert text.startswith("<b>⚠ r: &lt;b&gt;")
    assert "\n<code>2026-11-28T03:12:09Z running 1/3 - - - - r</code>\n" in text
