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

from bot.render import render_message
from core.models import MessageKind, OutboundMessage
from core.runtime import utc_now
from core.store import Store
from tests.reliability.helpers import CHAT_ID, db_rows, wait_for
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
