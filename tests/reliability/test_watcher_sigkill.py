"""The real `sleepwatch serve` process SIGKILLed at random points of a run's life, 20 times in a
row, restarted each time, against a real sshd, the fake Bot API and the fake Vast API: every
message the outbox holds reaches Telegram exactly once, the instance is destroyed exactly
once, and the run ends `done` in the store."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.render import render_message
from core.models import OutboundMessage
from tests.reliability.helpers import (
    CHAT_ID,
    INSTANCE,
    RUN,
    Cli,
    db_rows,
    ended_and_told,
    trainer_command,
    wait_for,
    write_config,
    write_trainer,
)

if TYPE_CHECKING:
    from tests.fixtures.fake_telegram import FakeTelegram
    from tests.fixtures.fake_vast import FakeVast
    from tests.fixtures.sshd import SshdServer

KILLS = 20
SEED = 20261128
# A hang guard, not a speed test: 21 start-ups of `serve` (imports alone take seconds) take ~3 min
# on a quiet 2-core machine and well over 4 under a loaded CI run.
WHOLE_TEST_S = 600.0


def serve_config(tmp_path: Path, sshd: SshdServer, tg: FakeTelegram, vast: FakeVast) -> Path:
    run_dir = tmp_path / "runs" / RUN
    trainer = write_trainer(tmp_path)
    return write_config(
        tmp_path / "sleepwatch.toml",
        {
            "watcher": {
                "state_dir": tmp_path / "state",
                "python": sys.executable,
                "remote_root": tmp_path / "remote",
                "wait_timeout": 5,
            },
            "cadence": {"scale": 0.0166},
            "thresholds": {
                "heartbeat_stale": 5,
                "stall_after": 30,
                "unreachable_checks": 2,
                "unreachable_after": 0,
            },
            "ssh": {"connect_timeout": 5, "exec_timeout": 10},
            "telegram": {"chat_ids": [CHAT_ID], "api_base": tg.base_url},
            "vast": {"api_base": vast.base_url},
        },
        [
            {
                "name": RUN,
                "instance_id": INSTANCE,
                "user": sshd.user,
                "key": sshd.key_path,
                "run_dir": run_dir,
                "command": trainer_command(trainer, run_dir, steps=100, step_s=0.5),
                "env": {"PYTHONUNBUFFERED": "1"},
                "backoff_s": 0.5,
                "heartbeat_s": 0.3,
                "max_attempts": 3,
            }
        ],
    )


async def kill_at_a_random_point(
    cli: Cli, tg: FakeTelegram, rng: random.Random, kill_points: list[str]
) -> None:
    """Start `serve` and SIGKILL it: one time in five during start-up (importing aiogram
    alone takes seconds), else up to 3 s after it is up (its first Bot API call)."""
    calls_before = len(tg.calls)
    serve = await cli.start("serve")
    if rng.random() < 0.2:
        delay = rng.uniform(0.3, 3.0)
        kill_points.append(f"start+{delay:.2f}")
    else:
        delay = rng.uniform(0.0, 3.0)
        kill_points.append(f"up+{delay:.2f}")
        await wait_for(lambda: len(tg.calls) > calls_before, 30, every_s=0.05, what="serve up")
    await asyncio.sleep(delay)
    serve.send_signal(signal.SIGKILL)
    await serve.wait()


def outbox_rows(db: Path) -> list[tuple[str, OutboundMessage, str | None]]:
    rows = db_rows(db, "SELECT kind, message, sent_at FROM outbox ORDER BY id")
    return [(kind, OutboundMessage.from_json(json.loads(doc)), sent) for kind, doc, sent in rows]


@pytest.mark.slow
async def test_serve_sigkilled_20_times_delivers_each_message_once_and_tears_down_once(
    tmp_path: Path, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> None:
    fake_vast.add_instance(INSTANCE, ssh_host=sshd.host, ssh_port=sshd.port)
    config = serve_config(tmp_path, sshd, fake_telegram, fake_vast)
    logs = tmp_path / "logs"
    logs.mkdir()
    cli = Cli(config, fake_telegram, fake_vast, logs)
    db = tmp_path / "state" / "sleepwatch.sqlite3"
    rng = random.Random(SEED)
    kill_points: list[str] = []
    try:
        async with asyncio.timeout(WHOLE_TEST_S):
            launch = await cli.start("launch", RUN)
            assert await launch.wait() == 0, cli.log_text()
            for _ in range(KILLS):
                await kill_at_a_random_point(cli, fake_telegram, rng, kill_points)
            calls_before = len(fake_telegram.calls)
            serve = await cli.start("serve")
            up = lambda: len(fake_telegram.calls) > calls_before  # noqa: E731
            await wait_for(up, 30, every_s=0.05, what="the last serve to be up")
            await wait_for(
                lambda: ended_and_told(db, RUN), 120, what="the run to end and the outbox to drain"
            )
            await asyncio.sleep(1.0)  # a last chance for a duplicate to show up
            serve.send_signal(signal.SIGTERM)
            assert await serve.wait() == 0
    except TimeoutError:
        pytest.fail(f"no end within {WHOLE_TEST_S}s (kills at {kill_points}):\n{cli.log_text()}")

    final = db_rows(db, "SELECT status, live, teardown FROM runs WHERE name = ?", (RUN,))
    assert final == [("done", 0, "destroyed")], cli.log_text()
    teardown = db_rows(db, "SELECT result FROM actions WHERE run = ? AND key = 'teardown'", (RUN,))
    assert teardown == [("destroyed",)]
    sent = [m["text"] for m in fake_telegram.sent]
    assert all(m["chat_id"] == CHAT_ID for m in fake_telegram.sent)
    duplicates = [text[:80] for text, n in Counter(sent).items() if n > 1]
    assert duplicates == [], f"sent twice: {duplicates}"
    rows = outbox_rows(db)
    assert all(sent_at is not None for _, _, sent_at in rows)
    terminal = [render_message(m) for kind, m, _ in rows if kind == "terminal"]
    assert len(terminal) == 1 and sent.count(terminal[0]) == 1
    assert sent[-1] == terminal[0]  # nothing after the end
    for kind, message, _ in rows:  # alerts may be merged with neighbours, never lost or doubled
        holding = [
            text
            for text in sent
            if message.title in text or any(r in text for r in message.reasons)
        ]
        assert len(holding) == 1, (kind, message.title, holding)
    assert not any("STILL BILLING" in text for text in sent)
    assert len(fake_vast.calls("DELETE")) == 1
    assert INSTANCE not in fake_vast.instances
