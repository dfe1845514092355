"""`sleepwatch init` end to end, through aiogram's real client against the fake Bot API and
the Vast adapter's real client against the fake Vast API: the token is checked with getMe, the
chat id comes from the first message the bot gets, the Vast key is checked, and the files it
writes load as `serve` loads them. A refused token or key is one clear line, exit 2, nothing
written, and the token is never printed."""

from __future__ import annotations

import asyncio
import stat
import time
import tomllib
from pathlib import Path

import pytest

from bot.app import main
from bot.init_file import Setup, config_text
from core.config import load_config, parse_config
from tests.fixtures.fake_telegram import FakeTelegram, message_update
from tests.fixtures.fake_vast import FakeVast

CHAT, USER = 424242, 777


def init_argv(path: Path, tg: FakeTelegram, vast: FakeVast, *extra: str) -> list[str]:
    return [
        "init", "--non-interactive", "--path", str(path), "--wait", "30",
        "--telegram-api-base", tg.base_url, "--vast-api-base", vast.base_url, *extra,
    ]  # fmt: skip


async def until(condition: object, ceiling_s: float = 20.0) -> None:
    deadline = time.monotonic() + ceiling_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_init_finds_the_chat_checks_both_keys_and_writes_files_that_load(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    fake_vast: FakeVast,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "conf" / "sleepwatch.toml"
    argv = init_argv(path, fake_telegram, fake_vast, "--token", fake_telegram.token,
                     "--vast-key", fake_vast.api_key)  # fmt: skip
    # main runs its own event loop: in a thread, while this loop serves the fakes
    running = asyncio.create_task(asyncio.to_thread(main, argv))
    await until(lambda: "getUpdates" in fake_telegram.methods() or running.done())
    fake_telegram.push_update(message_update(CHAT, "hi", date=int(time.time()), user_id=USER))
    assert await running == 0
    out, err = capsys.readouterr()

    config = load_config(path)
    assert config.telegram.chat_ids == [CHAT]
    assert config.telegram.api_base == fake_telegram.base_url
    assert config.vast.api_base == fake_vast.base_url
    assert f"# user_ids = [{USER}]" in path.read_text()
    env = path.with_name("sleepwatch.env")
    assert f"SLEEPWATCH_TELEGRAM_TOKEN={fake_telegram.token}\n" in env.read_text()
    assert f"VAST_API_KEY={fake_vast.api_key}\n" in env.read_text()
    for written in (path, env):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "Send any message to @" in out and fake_telegram.token not in out + err
    assert [m["chat_id"] for m in fake_telegram.sent] == [CHAT]
    # the message that gave the chat id is confirmed: `serve` will not answer it again
    offsets = [p.get("offset") for m, p in fake_telegram.calls if m == "getUpdates"]
    assert offsets[-1] == 2
    assert [r.authorized for r in fake_vast.requests] == [True]


async def test_a_refused_token_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    fake_vast: FakeVast,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "sleepwatch.toml"
    wrong = "123456789:AAwrongwrongwrongwrongwrongwrongwrong"
    argv = init_argv(path, fake_telegram, fake_vast, "--token", wrong, "--chat-id", "1")
    assert await asyncio.to_thread(main, argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("sleepwatch: Telegram refused the token (401 Unauthorized)"), err
    assert wrong not in out + err and "wrongwrong" not in out + err
    assert list(tmp_path.iterdir()) == [] and fake_vast.requests == []


async def test_a_refused_vast_key_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    fake_vast: FakeVast,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "sleepwatch.toml"
    argv = init_argv(path, fake_telegram, fake_vast, "--token", fake_telegram.token,
                     "--chat-id", str(CHAT), "--vast-key", "0123abcd" * 8)  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sleepwatch: Vast.ai: Vast refused the key (HTTP 401)"), err
    assert "0123abcd" * 8 not in err
    assert list(tmp_path.iterdir()) == [] and [r.authorized for r in fake_vast.requests] == [False]


def test_an_existing_config_is_not_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sleepwatch.toml"
    path.write_text("# mine\n")
    assert main(["init", "--non-interactive", "--path", str(path), "--token", "1:x"]) == 2
    assert "exists: not overwritten (--force to replace it)" in capsys.readouterr().err
    assert path.read_text() == "# mine\n"


def test_the_run_template_uncommented_loads_and_collects_its_outputs() -> None:
    text = config_text(Setup(chat_id=CHAT, user_id=None, bot_username="sleepwatch_bot"))
    head, _, template = text.partition("# [[runs]]")
    lines = ["[[runs]]"] + [line.removeprefix("#").removeprefix(" ") for line in
                            template.splitlines()[1:]]  # fmt: skip
    config = parse_config(tomllib.loads(head + "\n".join(lines)), source="template")
    collect = config.run("llama-ft").collect
    assert collect is not None and collect.to == "local"
    assert collect.paths == ["output/checkpoint-*", "*.json", "attempts"]
