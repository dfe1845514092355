"""The service's own health on an injected clock: one loud line a minute while a problem lasts,
the heartbeat file `sleepwatch health` reads, and its reading (old format too)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest_asyncio

from core.console import ConsoleNotifier
from core.errors import StoreError, StoreFull
from core.health import FULL_CLEARED_S, HEALTHY_WITHIN_S, Heartbeat, read_heartbeat
from core.models import OutboundMessage
from core.store import Store
from tests.conftest import FakeClock

TOKEN_REFUSED = {"telegram": "telegram refused the bot token (Unauthorized)"}


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "db.sqlite3") as opened:
        yield opened


async def test_a_lasting_problem_is_one_loud_line_a_minute(
    store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    lines: list[str] = []
    beat_file = tmp_path / "service.heartbeat"
    heartbeat = Heartbeat(
        store, ConsoleNotifier(io.StringIO()), clock, file=beat_file, alarm=lines.append
    )
    for _ in range(13):  # a beat every 15 s for three minutes
        await heartbeat.beat(TOKEN_REFUSED)
        clock.advance(15)
    assert len(lines) == 4  # at 0, 60, 120 and 180 s
    assert all("UNHEALTHY" in line and "refused the bot token" in line for line in lines)
    doc = json.loads(beat_file.read_text())
    assert doc["problems"] == list(TOKEN_REFUSED.values())

    await heartbeat.beat({})  # fixed: quiet, and healthy again
    assert len(lines) == 4
    assert read_heartbeat(beat_file.read_text(), clock(), where=beat_file).healthy


def test_health_reads_age_problems_and_the_older_format(clock: FakeClock) -> None:
    where = Path("service.heartbeat")
    now = clock()
    fresh = json.dumps({"at": now.isoformat(), "problems": []})
    assert read_heartbeat(fresh, now, where=where).healthy
    old_format = (now - timedelta(seconds=5)).isoformat()
    assert read_heartbeat(old_format, now, where=where).healthy
    stale = read_heartbeat(fresh, now + timedelta(seconds=HEALTHY_WITHIN_S + 1), where=where)
    assert not stale.healthy and "ago" in stale.reason
    sick = json.dumps({"at": now.isoformat(), "problems": ["store writes fail: disk full"]})
    assert read_heartbeat(sick, now, where=where).reason == "store writes fail: disk full"
    for broken in (None, "", "{", '{"at": 5}', "[]", '{"problems": []}'):
        assert not read_heartbeat(broken, now, where=where).healthy


class FillingStore:
    """What the heartbeat reads of the store: its last write error, set by the test."""

    def __init__(self) -> None:
        self.write_error: StoreError | None = None

    async def set_meta(self, key: str, value: str) -> None:
        return None


class Recording:
    def __init__(self) -> None:
        self.delivered: list[OutboundMessage] = []

    async def deliver(self, message: OutboundMessage) -> None:
        self.delivered.append(message)


async def test_a_full_disk_is_one_alert_though_a_write_goes_through_in_between(
    clock: FakeClock,
) -> None:
    store, notifier = FillingStore(), Recording()
    heartbeat = Heartbeat(store, notifier, clock, file=None, alarm=lambda _line: None)  # type: ignore[arg-type]
    full = StoreFull("disk full writing the store")
    for error in (full, None, full, None, full):  # a write lands in space SQLite held
        store.write_error = error
        await heartbeat.beat({})
        clock.advance(15)
    assert len(notifier.delivered) == 1

    store.write_error = None  # room again, for good
    for _ in range(int(FULL_CLEARED_S // 15) + 1):
        await heartbeat.beat({})
        clock.advance(15)
    store.write_error = full  # a new episode
    await heartbeat.beat({})
    assert len(notifier.delivered) == 2
