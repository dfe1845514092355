"""Faults of the service's own ground, through a real `sleepwatch serve` process and the fake
Bot API: the store's disk fills up, a second `serve` starts on the same state dir, the store
file is deleted or replaced, the token is refused, aiohttp puts the token in an error."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.render import render_message
from core.models import MessageKind, OutboundMessage
from core.runtime import utc_now
from core.store import Store
from tests.reliability.helpers import db_rows, wait_for
from tests.reliability.serve import Sleepwatch, fill, small_filesystem, stop

if TYPE_CHECKING:
    from tests.fixtures.fake_telegram import FakeTelegram

UP_S = 60.0  # importing aiogram alone takes seconds on a loaded machine


def message(title: str) -> OutboundMessage:
    return OutboundMessage(MessageKind.INFO, title, reasons=(f"{title}: the reason",))


async def enqueue(db: Path, *messages: OutboundMessage) -> None:
    async with await Store.open(db) as store:
        for one in messages:
            await store.enqueue(one, dedupe_key=None, at=utc_now())


def unsent(db: Path) -> int:
    return int(db_rows(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0])


def sent_texts(tg: FakeTelegram) -> list[str]:
    return [str(m["text"]) for m in tg.sent]


async def health(cli: Sleepwatch) -> tuple[int, str]:
    code, _, err = await cli.run("health")
    return code, err


async def test_a_full_disk_under_the_store_sends_each_message_once_and_alerts_once(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    with small_filesystem(tmp_path / "disk", size_mb=16) as disk:
        cli = Sleepwatch(tmp_path, fake_telegram, disk / "state")
        serve = await cli.start("serve")
        try:
            await wait_for(lambda: bool(cli.heartbeat()), UP_S, what="serve up")
            fake_telegram.fail_next("sendMessage", "hold")  # answered once the disk is full
            hello = message("a message stored before the disk filled")
            await enqueue(cli.db, hello)
            await wait_for(fake_telegram.holding.is_set, 30, what="the delivery")
            filler = fill(disk)
            fake_telegram.release.set()

            alert = lambda: [t for t in sent_texts(fake_telegram) if "disk full" in t]  # noqa: E731
            await wait_for(lambda: bool(alert()), 30, what="the disk-full alert")
            code, err = await health(cli)
            assert code == 1 and "disk full" in err, err
            await asyncio.sleep(8)  # four of the outbox's 2 s rounds: room for a resend
            assert Counter(sent_texts(fake_telegram))[render_message(hello)] == 1
            assert len(alert()) == 1
            assert unsent(cli.db) == 1  # delivered, the mark still waiting for room

            filler.unlink()
            await wait_for(lambda: unsent(cli.db) == 0, 30, what="the mark once there is room")
            await wait_for(
                lambda: '"problems": []' in cli.heartbeat(), 30, what="a healthy heartbeat"
            )
            assert (await health(cli))[0] == 0
            assert Counter(sent_texts(fake_telegram))[render_message(hello)] == 1
            assert len(alert()) == 1
        finally:
            code = await stop(serve)
        assert code == 0, cli.log_text()


async def test_a_second_serve_on_the_same_state_dir_is_refused(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    cli = Sleepwatch(tmp_path, fake_telegram, tmp_path / "state")
    first = await cli.start("serve")
    try:
        await wait_for(lambda: bool(cli.heartbeat()), UP_S, what="serve up")
        code, out, err = await cli.run("serve", timeout_s=UP_S)
        assert code == 2, out + err
        assert f"another `sleepwatch serve` (pid {first.process.pid})" in err
        assert len(err.strip().splitlines()) == 1, err  # one clear line, no traceback
        assert first.process.returncode is None  # the first one goes on
    finally:
        assert await stop(first) == 0, cli.log_text()
    code, _, err = await cli.run("runs")  # one-shot commands are not refused
    assert code == 0, err


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_the_store_deleted_or_replaced_under_serve_stops_it_loudly(
    tmp_path: Path, fake_telegram: FakeTelegram, how: str
) -> None:
    cli = Sleepwatch(tmp_path, fake_telegram, tmp_path / "state")
    serve = await cli.start("serve")
    try:
        await wait_for(lambda: bool(cli.heartbeat()), UP_S, what="serve up")
        if how == "deleted":
            cli.db.unlink()
        else:
            copy = tmp_path / "copy.sqlite3"
            shutil.copyfile(cli.db, copy)
            os.replace(copy, cli.db)
        code = await asyncio.wait_for(serve.process.wait(), 30)
    finally:
        await stop(serve)
    err = serve.stderr()
    assert code == 1, cli.log_text()
    assert f"the store {cli.db} was {how}" in err, err
    assert "STOPPING" in err


async def test_a_refused_token_fails_health_and_messages_wait_for_a_token_that_works(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    cli = Sleepwatch(tmp_path, fake_telegram, tmp_path / "state")
    first, second = message("first"), message("second")
    await enqueue(cli.db, first, second)
    wrong = fake_telegram.token.split(":")[0] + ":TESTwrong0000000000000000000000000"
    serve = await cli.start("serve", token=wrong)
    try:
        await wait_for(lambda: "UNHEALTHY" in serve.stderr(), UP_S, what="the loud line")
        code, err = await health(cli)
        assert code == 1 and "refused the bot token" in err, err
        await asyncio.sleep(3)  # six heartbeats: still one loud line (one a minute)
        loud = [line for line in serve.stderr().splitlines() if "UNHEALTHY" in line]
        assert len(loud) == 1, loud
        assert "refused the bot token" in loud[0] and wrong not in serve.stderr()
    finally:
        assert await stop(serve) == 0, cli.log_text()
    assert fake_telegram.sent == [] and unsent(cli.db) == 2

    serve = await cli.start("serve")  # the token fixed, serve restarted: sent at once
    try:
        await wait_for(lambda: unsent(cli.db) == 0, UP_S, what="the waiting messages")
        await wait_for(lambda: '"problems": []' in cli.heartbeat(), 30, what="healthy")
        assert (await health(cli))[0] == 0
    finally:
        assert await stop(serve) == 0, cli.log_text()
    assert sent_texts(fake_telegram) == [render_message(first), render_message(second)]


async def test_the_token_never_appears_in_errors_when_aiohttp_puts_the_url_in_them(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    cli = Sleepwatch(tmp_path, fake_telegram, tmp_path / "state")
    hello = message("through a redirect loop")
    await enqueue(cli.db, hello)
    fake_telegram.fail_next("sendMessage", "redirect")
    serve = await cli.start("--verbose", "serve")
    try:
        await wait_for(lambda: unsent(cli.db) == 0, UP_S, what="the message after the loop")
    finally:
        assert await stop(serve) == 0, cli.log_text()
    errors = db_rows(cli.db, "SELECT last_error FROM outbox")
    assert "TooManyRedirects" in str(errors[0][0]), errors  # the fault did happen
    assert sent_texts(fake_telegram) == [render_message(hello)]
    secret = fake_telegram.token.split(":", 1)[1]
    texts = {
        "outbox": json.dumps(db_rows(cli.db, "SELECT * FROM outbox")),
        "stdout": serve.stdout(),
        "stderr": serve.stderr(),
    }
    assert "DEBUG" in texts["stderr"]  # --verbose was on
    assert [name for name, text in texts.items() if secret in text] == []
