"""The command line answers as chat does, from the same code (core/answers.py): `sleepwatch
mute RUN 90` and `/mute RUN 90` read 90 as minutes by one rule and say the same sentence;
`sleepwatch status RUN` prints what /status shows, as plain text."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.app import main
from bot.commands import Mute, parse_command
from bot.render import render_status
from core.answers import mute_answer, status_answer
from core.models import RunRecord, RunView
from core.runtime import DB_NAME
from core.store import Store

ZONE = "Europe/Berlin"  # the CLI shows times in chat's zone too
LINE = "2026-11-28T03:12:09Z done 1/3 90000/90000 - - - llama-ft"


async def seeded_config(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    async with await Store.open(state / DB_NAME) as store:
        launched = datetime.now(UTC) - timedelta(hours=2)
        await store.upsert_run(
            RunRecord(
                name="llama-ft", run_dir="/workspace/runs/llama-ft", launched_at=launched,
                live=False, status="done", last_status_line=LINE, ended_at=launched,
            )
        )  # fmt: skip
    config = tmp_path / "sleepwatch.toml"
    config.write_text(f'[watcher]\nstate_dir = "{state}"\n[telegram]\ntimezone = "{ZONE}"\n')
    return config


async def test_mute_90_on_the_command_line_is_chats_mute_90(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = await seeded_config(tmp_path)
    chat = parse_command("/mute llama 90")
    assert chat == Mute("llama", 90 * 60)
    before = datetime.now(UTC).replace(microsecond=0)
    code = await asyncio_main(["mute", "llama", "90", "--config", str(config)])
    out = capsys.readouterr().out.strip()
    assert code == 0
    async with await Store.open(tmp_path / "state" / DB_NAME) as store:
        record = await store.get_run("llama-ft")
    assert record is not None and record.muted_until is not None
    assert record.muted_until - before >= timedelta(seconds=chat.seconds)
    asked_at = record.muted_until - timedelta(seconds=chat.seconds)  # the CLI's `now`
    assert out == mute_answer("llama-ft", record.muted_until, asked_at, ZoneInfo(ZONE))


async def test_status_prints_the_chats_status_answer_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = await seeded_config(tmp_path)
    assert await asyncio_main(["--config", str(config), "status", "llama-ft"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [LINE, "llama-ft"] and lines[2].startswith("ended")
    view = RunView(name="llama-ft", live=False, status_line=LINE, tail=("step 1 loss <2>",))
    now = datetime.now(UTC)
    html = render_status(view, now)
    assert all(line.replace("<", "&lt;").replace(">", "&gt;") in html
               for line in status_answer(view, now).lines())  # fmt: skip


async def asyncio_main(argv: list[str]) -> int:
    # main runs its own event loop: off this test's loop, in a thread
    return await asyncio.to_thread(main, argv)
