"""Tokens and API keys never leak: a full flow (a local run to `done` on a Vast instance, its
teardown, alerts and commands through Telegram, with DEBUG logging on) and then every output is
searched for the token and the key. Files holding state are created for the user alone."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiogram.exceptions import AiogramError
from aiogram.types import Update
from pydantic import SecretStr

from bot.telegram import TelegramNotifier, build_bot, build_dispatcher, delivery_error
from core.config import Config, Secrets
from core.errors import SleepwatchError
from core.local import LocalTransport
from core.models import MessageKind, OutboundMessage
from core.providers import VastProvider
from core.runtime import utc_now
from core.service import Service
from core.store import Store
from tests.fixtures.fake_telegram import FakeTelegram, message_update
from tests.fixtures.fake_vast import Answer, FakeVast
from tests.security.localrun import launch_local, local_config

CHAT = 1001
INSTANCE = "4242"

TRAINER = """
import json, os, sys, time
for step in range(1, 6):
    time.sleep(0.1)
    print(f"step {step}/5 loss 1.0", flush=True)
# frameworks do dump their environment; nothing secret may be in it
print("env: " + json.dumps(dict(os.environ)), flush=True)
print("Traceback (most recent call last):\\nRuntimeError: survivable", flush=True)
time.sleep(1.5)
print("done", flush=True)
"""


def secrets_of(fake_telegram: FakeTelegram, fake_vast: FakeVast) -> list[str]:
    token_secret = fake_telegram.token.split(":", 1)[1]  # the bot id before ':' is public
    return [fake_telegram.token, token_secret, fake_vast.api_key]


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in root.rglob("*") if p.is_file())


async def collect_exception_texts(
    fake_telegram: FakeTelegram, fake_vast: FakeVast, notifier: TelegramNotifier, key: SecretStr
) -> list[str]:
    """str and repr of the errors a failing Telegram or Vast produces on the way out."""
    texts: list[str] = []
    message = OutboundMessage(kind=MessageKind.INFO, title="x", chat_id=CHAT)
    for kind in ("500", "400", "403", "disconnect"):
        fake_telegram.fail_next("sendMessage", kind)
        with pytest.raises(SleepwatchError) as raised:
            await notifier.deliver(message)
        exc, cause = raised.value, raised.value.__cause__
        texts += [str(exc), repr(exc), str(cause), repr(cause)]
        if isinstance(cause, AiogramError):
            texts.append(str(delivery_error(cause)))
    # a server that echoes the key back, first as a retried 500, then as a final 401
    fake_vast.script(Answer(500, {"error": f"bad key {key.get_secret_value()}"}), method="GET")
    fake_vast.script(Answer(401, {"error": f"invalid {key.get_secret_value()}"}), method="GET")
    provider = VastProvider(fake_vast.base_url, key, base_delay_s=0.01)
    with pytest.raises(SleepwatchError) as refused:
        await provider.show(INSTANCE)
    texts += [str(refused.value), repr(refused.value), repr(provider)]
    await provider.close()
    return texts


async def test_no_output_of_a_full_flow_holds_the_token_or_the_api_key(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    fake_vast: FakeVast,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    monkeypatch.setenv("SLEEPWATCH_TELEGRAM_TOKEN", fake_telegram.token)
    monkeypatch.setenv("VAST_API_KEY", fake_vast.api_key)
    secrets = Secrets()
    assert secrets.telegram_token is not None and secrets.vast_api_key is not None
    fake_vast.add_instance(INSTANCE, dph_total=0.5)
    config = local_config(tmp_path, "secret-run", TRAINER, instance_id=INSTANCE)
    config = Config.model_validate({**config.model_dump(), "telegram": {"chat_ids": [CHAT]}})
    db = tmp_path / "state" / "sleepwatch.sqlite3"
    store = await Store.open(db)
    bot = build_bot(secrets.telegram_token, fake_telegram.base_url)
    provider = VastProvider(fake_vast.base_url, secrets.vast_api_key, base_delay_s=0.01)
    notifier = TelegramNotifier(bot, config.telegram.chat_ids)
    local = LocalTransport()
    service = Service(
        config,
        store,
        notifier,
        lambda r: provider,
        lambda r: local,
        utc_now,
        min_gap_s=0,
        hold_s=0,
    )
    fake_vast.script(Answer(503, {"error": f"overloaded; your key {fake_vast.api_key}"}))
    try:
        await launch_local(config, store, local, provider)
        dp = build_dispatcher(service.control, store, [CHAT], utc_now)
        for update_id, text in enumerate(["/runs", "/status secret-run", "/kill nope"], 1):
            update = message_update(CHAT, text, date=int(utc_now().timestamp()))
            await dp.feed_update(bot, Update.model_validate({"update_id": update_id, **update}))
        fake_telegram.fail_next("sendMessage", "disconnect")  # a delivery error is stored
        await service.start()
        await asyncio.wait_for(service.finished["secret-run"].wait(), 60)
        async with asyncio.timeout(30):  # the deferred delivery too, not only what is due
            while (await store.outbox_counts())[1]:
                await asyncio.sleep(0.1)
        exception_texts = await collect_exception_texts(
            fake_telegram, fake_vast, notifier, secrets.vast_api_key
        )
    finally:
        await service.stop()
        await provider.close()
        await bot.session.close()
        await store.close()

    final_texts = [m["text"] for m in fake_telegram.sent]
    terminal = [t for t in final_texts if "secret-run: done" in t]
    assert len(terminal) == 1 and f"{INSTANCE} destroyed" in terminal[0], final_texts
    assert fake_vast.calls("DELETE") and all(r.authorized for r in fake_vast.requests[:3])
    out, err = capfd.readouterr()
    run_dir, state_dir = Path(config.runs[0].run_dir), tmp_path / "state"
    outputs = {
        # aiohttp.access is the fake Bot API's own log of the paths it served: Telegram's side
        "logs": "\n".join(
            f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name != "aiohttp.access"
        ),
        "stdout": out,
        "stderr": err,
        "telegram requests": json.dumps([params for _, params in fake_telegram.calls]),
        "vast requests": json.dumps([(r.method, r.body) for r in fake_vast.requests]),
        "secrets": repr(secrets) + str(secrets) + secrets.model_dump_json(),
        "config": repr(config) + config.model_dump_json(),
        "exceptions": "\n".join(exception_texts),
    }
    for path in files_under(run_dir, state_dir, tmp_path / "state" / "supervisor-code"):
        outputs[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert '"PYTHONUNBUFFERED": "1"' in (run_dir / "attempts" / "1.log").read_text()
    assert len(exception_texts) == 4 * 5 + 3 and "**********" in outputs["secrets"]
    assert any(r.name.startswith("aiogram") for r in caplog.records)  # DEBUG was on
    assert any(db.name in name for name in outputs)
    for secret in secrets_of(fake_telegram, fake_vast):
        leaks = [name for name, text in outputs.items() if secret in text]
        assert leaks == [], f"a secret appears in {leaks}"


async def test_the_database_and_its_folder_are_for_the_user_alone(tmp_path: Path) -> None:
    state = tmp_path / "fresh" / "state"
    store = await Store.open(state / "sleepwatch.sqlite3")
    await store.set_meta("k", "v")  # the WAL and shared-memory files exist now
    try:
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for path in state.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert {p.name for p in state.iterdir()} >= {"sleepwatch.sqlite3", "sleepwatch.sqlite3-wal"}
    finally:
        await store.close()


async def test_a_database_left_readable_by_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "sleepwatch.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    store = await Store.open(path)
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_the_run_config_written_for_the_supervisor_is_private(tmp_path: Path) -> None:
    config = local_config(tmp_path, "private", "print('hi')\n")
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    try:
        record = await launch_local(config, store, LocalTransport())
        await asyncio.sleep(0.5)
        run_json = Path(record.run_dir) / "RUN.json"
        assert stat.S_IMODE(run_json.stat().st_mode) == 0o600
    finally:
        await store.close()


async def test_a_local_command_never_sees_the_watchers_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLEEPWATCH_TELEGRAM_TOKEN", "1:never-seen-token")
    monkeypatch.setenv("VAST_API_KEY", "never-seen-key")
    monkeypatch.setenv("SLEEPWATCH_PLAIN", "seen")
    result = await LocalTransport().run(["env"], timeout_s=10)
    assert b"SLEEPWATCH_PLAIN=seen" in result.stdout
    assert b"never-seen" not in result.stdout
