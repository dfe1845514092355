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
from core.health import HEALTHY_WITHIN_S, Heartbeat, read_heartbeat
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
