"""Issue 13's money, through a real serve: the Service (scheduler, wait channels, outbox, beats)
with the Telegram notifier and the aiogram dispatcher against the fake Bot API, the real
VastProvider against the fake Vast API (the hourly price is read from it at launch), two runs
under the real supervisor on this machine, and an injected clock moved by hours.

One run has `max_cost`: warned an hour of spend ahead, /extend raises the cap by the duration at
the price, then at the cap it is stopped and its instance destroyed (one DELETE). The other is
kept by policy when it ends: reminded after `kept_reminder` with the money spent since the end,
listed first by /runs, and silent after /keep."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot
from pydantic import SecretStr

from bot.confirm import Confirmations
from bot.telegram import TelegramNotifier, build_bot, build_dispatcher, start_polling_resilient
from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig, WatcherConfig
from core.launch import launch, plan_launch
from core.local import LocalTransport
from core.providers import VastProvider
from core.runtime import utc_now
from core.service import Service
from core.store import Store
from tests.conftest import FakeClock
from tests.fixtures.fake_telegram import FakeTelegram, message_update
from tests.fixtures.fake_vast import FakeVast, RecordingSleep

PAID, KEPT = "paid-run", "kept-run"
PAID_ID, KEPT_ID = "4242", "4243"
CHAT = 1001
WAIT_S = 90.0  # generous: a terminal message waits for its chart (matplotlib) under load
LONG = """
import time
for s in range(1, 3001):
    print(f"step {s}/3000", flush=True)
    time.sleep(0.1)
"""
QUICK = "print('step 1/1', flush=True)\n"


def make_config(tmp_path: Path, fake: FakeVast) -> Config:
    def run(name: str, instance_id: str, trainer: str, **fields: Any) -> RunConfig:
        script = tmp_path / f"{name}.py"
        script.write_text(trainer)
        return RunConfig(
            name=name,
            local=True,  # the supervisor runs here; the instance and its price are Vast's
            instance_id=instance_id,
            run_dir=str(tmp_path / "runs" / name),
            command=f"{sys.executable} {script}",
            heartbeat_s=0.3,
            backoff_s=0.1,
            max_attempts=1,
            **fields,
        )

    return Config(
        watcher=WatcherConfig(state_dir=tmp_path / "state", python=sys.executable, wait_timeout=20),
        cadence=CadenceConfig(scale=1 / 60),
        # the clock moves by hours: no stall, no stale heartbeat; this machine's disk is not news
        thresholds=ThresholdsConfig(heartbeat_stale="2d", stall_after="2d", disk_low_mb=0),
        vast={"api_base": fake.base_url},  # type: ignore[arg-type]
        runs=[
            run(PAID, PAID_ID, LONG, max_cost=1.0),  # $0.50/h: the cap 2 h after launch
            run(KEPT, KEPT_ID, QUICK, destroy_on_done=False, kept_reminder="4h"),
        ],
    )


async def until(condition: Callable[[], Any], timeout_s: float = WAIT_S) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def test_max_cost_and_kept_instances_through_serve(
    tmp_path: Path, fake_vast: FakeVast, fake_telegram: FakeTelegram
) -> None:
    fake_vast.add_instance(PAID_ID, dph_total=0.50)
    fake_vast.add_instance(KEPT_ID, dph_total=0.25)
    config = make_config(tmp_path, fake_vast)
    clock = FakeClock(utc_now().replace(microsecond=0))
    local = LocalTransport()
    bot: Bot = build_bot(SecretStr(fake_telegram.token), fake_telegram.base_url)
    key = SecretStr(fake_vast.api_key)
    provider = VastProvider(fake_vast.base_url, key, sleep=RecordingSleep())
    store = await Store.open(tmp_path / "state" / "sleepwatch.sqlite3")
    service = Service(
        config,
        store,
        TelegramNotifier(bot, [CHAT]),
        lambda record: provider,
        lambda record: local,
        clock,
        emit=lambda line: None,
        min_gap_s=0.0,
        hold_s=0.0,
    )
    service.watcher.exits.sleep = RecordingSleep()  # the destroy's read-backs wait for nothing
    sent_ids = iter(range(2, 10_000))

    def say(text: str) -> int:
        seen = len(fake_telegram.sent)
        date = int(clock.now.timestamp())
        fake_telegram.push_update(message_update(CHAT, text, date=date, message_id=next(sent_ids)))
        return seen

    def texts(after: int = 0) -> list[str]:
        return [m["text"] for m in fake_telegram.sent[after:]]

    async def sent(expect: str, after: int = 0) -> str:
        await until(lambda: any(expect in t for t in texts(after)))
        return next(t for t in texts(after) if expect in t)

    stop = asyncio.Event()
    polling: asyncio.Task[None] | None = None
    launched = []
    try:
        for run in config.runs:
            plan = await plan_launch(run, config, provider, clock)
            launched.append(await launch(plan, run, config, store, local, provider))
        assert [r.dph_total for r in launched] == [0.50, 0.25]  # the provider's price
        await service.start()
        dispatcher = build_dispatcher(service.control, store, [CHAT], clock, Confirmations())
        polling = asyncio.create_task(start_polling_resilient(bot, dispatcher, stop))

        # the quick run ends and its instance is kept by policy, still billing
        await asyncio.wait_for(service.finished.setdefault(KEPT, asyncio.Event()).wait(), WAIT_S)
        assert "kept running by policy" in await sent(f"{KEPT}: done")

        async def paid_status() -> str | None:
            record = await store.get_run(PAID)
            return record.status if record else None

        await until(lambda: _is(paid_status(), "running"))

        # 1 h 30 min in: $0.75 of $1.00, the cap in 30 min: one loud warning
        clock.advance(1.5 * 3600)
        await service.check(PAID)
        warning = await sent("$0.75 of max_cost $1.00 at $0.50/h")
        assert "in 30m" in warning and "/extend" in warning

        # /extend 1h raises the cap by $0.50, so it moves an hour, like a deadline would
        seen = say(f"/extend {PAID} 1h")
        assert await sent("max_cost of", seen) == f"max_cost of {PAID} is now $1.50."
        clock.advance(3600)  # 2 h 30 min: past the old cap, 30 min before the new one
        await service.check(PAID)
        await sent("$1.25 of max_cost $1.50 at $0.50/h")
        assert fake_vast.calls("DELETE") == []
        paid = await store.get_run(PAID)
        assert paid is not None and paid.live and paid.cost_extended_usd == 0.5

        # past the new cap: stopped, destroyed once, one terminal message that says why
        clock.advance(0.6 * 3600)
        await service.check(PAID)
        await asyncio.wait_for(service.finished[PAID].wait(), WAIT_S)
        terminal = await sent(f"{PAID}: stopped")
        assert "max_cost reached" in terminal and f"{PAID_ID} destroyed" in terminal
        assert [r.instance_id for r in fake_vast.calls("DELETE")] == [PAID_ID]
        paid = await store.get_run(PAID)
        assert paid is not None and (paid.live, paid.outcome) == (False, "cost_capped")

        # the kept instance: reminded once its period has passed since the run ended
        kept = await store.get_run(KEPT)
        assert kept is not None and kept.ended_at is not None
        clock.now = kept.ended_at + timedelta(hours=4, minutes=1)
        await service.beat_once()
        reminder = await sent(f"instance {KEPT_ID} still billing")
        assert "$1.00 since the run ended, at $0.25/h" in reminder
        assert f"/keep {KEPT}" in reminder

        # /runs: the kept instance first, with what it costs
        seen = say("/runs")
        runs = await sent("Runs: 0 live, 2 ended, 1 kept instance billing", seen)
        assert runs.index(KEPT) < runs.index(PAID), runs
        assert "KEPT: instance still billing" in runs

        # /keep: acknowledged, no reminder after the next period, nothing destroyed
        seen = say(f"/keep {KEPT}")
        assert "no more reminders" in await sent(f"{KEPT}: instance {KEPT_ID} is kept", seen)
        clock.advance(4 * 3600)
        await service.beat_once()
        await service.drain_outbox(5)
        assert len([t for t in texts() if f"instance {KEPT_ID} still billing" in t]) == 1
        assert [r.instance_id for r in fake_vast.calls("DELETE")] == [PAID_ID]
        assert not re.search(r"cost_cap|disk_low", " ".join(texts()))  # words, not keys
    finally:
        stop.set()
        if polling is not None:
            await asyncio.wait_for(polling, 10)
        for record in launched:  # never leave a trainer behind, whatever failed
            with contextlib.suppress(Exception):
                await service.watcher.exits.ctl(record, "stop")
        await service.stop()
        await bot.session.close()
        await provider.close()
        await store.close()


async def _is(status: Any, expected: str) -> bool:
    return bool(await status == expected)
