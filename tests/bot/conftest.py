"""Bot test kit: a fake clock, a Control with a few runs, a real store, the real Bot on the
real aiohttp session pointed at the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from pydantic import SecretStr

from bot.confirm import Confirmations
from bot.telegram import build_bot, build_dispatcher
from core.errors import AmbiguousRun, UnknownRun
from core.models import Extension, RunView
from core.store import Store
from tests.conftest import FakeClock
from tests.fixtures.fake_telegram import FakeTelegram, fake_telegram  # noqa: F401

T0 = datetime(2026, 11, 28, 3, 12, 9, tzinfo=UTC)
ALLOWED_CHAT = 1001
OTHER_ALLOWED_CHAT = 1002
STRANGER = 666
LLAMA_LINE = "2026-11-28T03:12:09Z running 2/3 41200/90000 97% 71.3/80.0G oom llama-ft"


class FakeControl:
    """The Control protocol over a dict of views; records what it was asked to do."""

    def __init__(self) -> None:
        self.charts: dict[str, bytes] = {}
        self.views = {
            "llama-ft": RunView(
                name="llama-ft",
                live=True,
                status_line=LLAMA_LINE,
                instance_id="8812345",
                cost_usd=12.3,
                dph_total=0.412,
                interval_s=1800,
                next_check_at=T0 + timedelta(minutes=30),
                deadline_at=T0 + timedelta(hours=6),
                tail=("step 41200 loss 1.93", "step 41210 loss <1.90> & falling"),
            ),
            "llava-eval": RunView(
                name="llava-eval",
                live=False,
                status_line="2026-11-27T22:00:00Z done 1/3 500/500 - - - llava-eval",
                instance_id="8800001",
                cost_usd=3.1,
                teardown="destroyed",
            ),
        }
        self.actions: list[tuple[str, str]] = []

    async def resolve(self, name: str) -> str:
        if name in self.views:
            return name
        matches = sorted(n for n in self.views if n.startswith(name))
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousRun(name, matches)
        raise UnknownRun(name, sorted(self.views))

    async def list_runs(self, now: datetime) -> list[RunView]:
        return sorted(self.views.values(), key=lambda v: not v.live)

    async def view(self, run: str, now: datetime) -> RunView:
        return self.views[run]

    async def chart(self, run: str) -> bytes | None:
        return self.charts.get(run)

    async def kill(self, run: str) -> str:
        self.actions.append(("kill", run))
        self.views[run] = replace(self.views[run], live=False)
        return f"{run}: stop requested; the supervisor ended the trainer."

    async def teardown(self, run: str) -> str:
        self.actions.append(("teardown", run))
        self.views[run] = replace(self.views[run], teardown="destroyed", live=False)
        return f"{run}: instance {self.views[run].instance_id} destroyed (verified)."

    async def extend(self, run: str, seconds: float, now: datetime) -> Extension:
        self.actions.append(("extend", run))
        deadline = (self.views[run].deadline_at or now) + timedelta(seconds=seconds)
        self.views[run] = replace(self.views[run], deadline_at=deadline)
        return Extension(deadline_at=deadline)

    async def keep(self, run: str, now: datetime) -> str:
        self.actions.append(("keep", run))
        self.views[run] = replace(self.views[run], kept=False)
        return f"{run}: instance {self.views[run].instance_id} is kept; no more reminders."

    async def mute(self, run: str, seconds: float, now: datetime) -> datetime:
        self.actions.append(("mute", run))
        until = now + timedelta(seconds=min(seconds, 86400))
        self.views[run] = replace(self.views[run], muted_until=until)
        return until


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "db.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


@pytest_asyncio.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:  # noqa: F811
    real_bot = build_bot(SecretStr(fake_telegram.token), fake_telegram.base_url)
    try:
        yield real_bot
    finally:
        await real_bot.session.close()


@pytest.fixture
def confirmations() -> Confirmations:
    return Confirmations()


@pytest.fixture
def dp(
    control: FakeControl, store: Store, clock: FakeClock, confirmations: Confirmations
) -> Dispatcher:
    return build_dispatcher(
        control, store, [ALLOWED_CHAT, OTHER_ALLOWED_CHAT], clock, confirmations
    )


async def feed(dp: Dispatcher, bot: Bot, update: dict[str, Any], update_id: int = 1) -> None:
    await dp.feed_update(
        bot, Update.model_validate({"update_id": update_id, **update}, context={"bot": bot})
    )
