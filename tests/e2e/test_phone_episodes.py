"""The phone at 3 a.m., through aiogram's real client and the fake Bot API: the demo's oom and
stall scenarios (a real supervisor, a real trainer) each arrive as exactly one silent episode
message plus one terminal message, silent too for a healthy end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.telegram import TelegramNotifier, build_bot
from core.demo import run_demo
from tests.fixtures.fake_telegram import FakeTelegram
from tests.security.telegram_html import assert_telegram_html

CHAT = 1001


@pytest.mark.parametrize(
    ("scenario", "episode"),
    [
        ("oom", "<b>↻ demo-oom self-healed: oom → eval_batch_size 64→32, attempt 2/3</b>"),
        ("stall", "<b>⚠ demo-stall stalled — attempt killed, retrying</b>"),
    ],
)
async def test_a_healed_episode_is_one_silent_message_then_one_silent_end(
    scenario: str, episode: str, tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    bot = build_bot(SecretStr(fake_telegram.token), fake_telegram.base_url)
    try:
        notifier = TelegramNotifier(bot, [CHAT])
        code = await run_demo(scenario, out=io.StringIO(), workdir=tmp_path, notifier=notifier)
    finally:
        await bot.session.close()

    assert code == 0
    first_lines = [m["text"].split("\n")[0] for m in fake_telegram.sent]
    assert first_lines == [episode, f"<b>✅ demo-{scenario}: done (completed)</b>"]
    for message in fake_telegram.sent:
        assert_telegram_html(message["text"])
        assert message["disable_notification"] is True  # nobody needs waking
        assert message["text"].split("\n")[1].startswith("<code>")  # the status line second
    if scenario == "oom":  # the excerpt rides inside the one message
        assert "torch.OutOfMemoryError: CUDA out of memory" in fake_telegram.sent[0]["text"]
    else:
        assert "stall (attempt 1 killed, retried)" in fake_telegram.sent[1]["text"]
