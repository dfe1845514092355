"""Each chat command end to end: an update fed to the real dispatcher, answered through the real
Bot and aiohttp session to the fake Bot API, against a Control with two runs."""

from __future__ import annotations

from typing import Any

from tests.bot.conftest import ALLOWED_CHAT, LLAMA_LINE, STRANGER, T0, feed
from tests.fixtures.fake_telegram import callback_update, message_update


def say(text: str, chat: int = ALLOWED_CHAT, age_s: int = 2) -> dict[str, Any]:
    return message_update(chat, text, date=int(T0.timestamp()) - age_s)


async def test_runs_lists_live_runs_first_with_cost(dp, bot, fake_telegram):
    await feed(dp, bot, say("/runs"))

    (reply,) = fake_telegram.sent
    assert reply["chat_id"] == ALLOWED_CHAT and reply["parse_mode"] == "HTML"
    text = reply["text"]
    assert text.index("llama-ft") < text.index("llava-eval")
    assert "$12.30 so far at $0.41/h" in text
    assert "1 live, 1 ended" in text


async def test_status_takes_a_unique_prefix_and_shows_cadence_and_log(dp, bot, fake_telegram):
    await feed(dp, bot, say("/status llama"))

    text = fake_telegram.sent[0]["text"]
    assert text.startswith(f"<code>{LLAMA_LINE}</code>")
    assert "cadence: every 30m" in text
    assert "next check: 03:42:09Z (in 30m)" in text
    assert "loss &lt;1.90&gt; &amp; falling" in text


async def test_an_ambiguous_or_unknown_name_lists_the_candidates(dp, bot, fake_telegram, control):
    await feed(dp, bot, say("/status ll"))
    await feed(dp, bot, say("/kill nope"))

    ambiguous, unknown = (m["text"] for m in fake_telegram.sent)
    assert "matches several runs: llama-ft, llava-eval" in ambiguous
    assert "No run named nope. Known runs: llama-ft, llava-eval." in unknown
    assert control.actions == []


async def test_malformed_arguments_get_the_usage_line(dp, bot, fake_telegram, store):
    await feed(dp, bot, say("/status"))
    await feed(dp, bot, say("/mute llama-ft 25h"))
    await feed(dp, bot, say("/extend ../../etc 1h"))

    texts = [m["text"] for m in fake_telegram.sent]
    assert texts[0] == "usage: /status RUN"
    assert "too long (at most 1d)" in texts[1]
    assert "not a run name" in texts[2]
    assert [r["verdict"] for r in await store.audit_rows(10)] == ["usage"] * 3


async def test_mute_and_extend_answer_the_new_times(dp, bot, fake_telegram, control):
    await feed(dp, bot, say("/mute llama 2h"))
    await feed(dp, bot, say("/extend llama-ft 1h30m"))

    mute, extend = (m["text"] for m in fake_telegram.sent)
    assert mute == "Soft alerts of llama-ft muted until 05:12:09Z."
    assert extend == "Deadline of llama-ft is now 10:42:09Z."
    assert control.actions == [("mute", "llama-ft"), ("extend", "llama-ft")]


async def test_help_lists_every_command(dp, bot, fake_telegram):
    await feed(dp, bot, say("/help@sleepwatch_bot"))

    text = fake_telegram.sent[0]["text"]
    for usage in ("/runs", "/status RUN", "/kill RUN", "/teardown RUN", "/mute RUN DURATION"):
        assert usage in text


async def test_a_command_for_another_bot_or_plain_text_is_ignored(dp, bot, fake_telegram):
    await feed(dp, bot, say("/runs@some_other_bot"))
    await feed(dp, bot, say("good night"))

    assert fake_telegram.sent == []


async def test_a_strangers_command_gets_nothing_and_is_audited(dp, bot, fake_telegram, store):
    await feed(dp, bot, say("/teardown llama-ft", chat=STRANGER))

    assert fake_telegram.calls == []
    (row,) = await store.audit_rows(10)
    assert (row["chat_id"], row["command"], row["verdict"]) == (
        STRANGER,
        "/teardown llama-ft",
        "refused",
    )


async def test_a_command_older_than_a_minute_is_not_executed(
    dp, bot, fake_telegram, control, store
):
    await feed(dp, bot, say("/kill llama-ft", age_s=600))

    (reply,) = fake_telegram.sent
    assert reply["text"].startswith("Ignored /kill llama-ft: it was sent at 03:02:09Z, 10m ago")
    assert reply.get("reply_markup") is None
    assert control.actions == []
    assert (await store.audit_rows(1))[0]["verdict"] == "stale"


async def test_executed_commands_are_audited(dp, bot, fake_telegram, store):
    await feed(dp, bot, say("/runs"))
    await feed(dp, bot, say("/status nope"))

    rows = await store.audit_rows(10)
    assert [(r["command"], r["verdict"]) for r in rows] == [
        ("/status nope", "unknown_run"),
        ("/runs", "ok"),
    ]


async def test_kill_of_an_ended_run_is_refused_without_a_button(dp, bot, fake_telegram):
    await feed(dp, bot, say("/kill llava"))

    (reply,) = fake_telegram.sent
    assert "already ended" in reply["text"]
    assert reply.get("reply_markup") is None


async def test_kill_asks_then_stops_the_run_on_confirm(dp, bot, fake_telegram, control):
    await feed(dp, bot, say("/kill llama"))
    prompt = fake_telegram.sent[0]
    assert "Stop run <b>llama-ft</b>?" in prompt["text"]
    confirm = prompt["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert control.actions == []

    await feed(dp, bot, callback_update(ALLOWED_CHAT, confirm, message_id=prompt["message_id"]))

    assert control.actions == [("kill", "llama-ft")]
    assert fake_telegram.callback_answers[0]["text"] == "Working…"
    assert "stop requested" in fake_telegram.edits[0]["text"]


async def test_status_of_a_run_with_a_chart_is_one_photo_captioned_with_the_answer(
    dp, bot, fake_telegram, control
):
    control.charts["llama-ft"] = b"\x89PNG\r\n\x1a\n-a-chart-"
    await feed(dp, bot, say("/status llama"))

    assert fake_telegram.methods().count("sendPhoto") == 1
    assert "sendMessage" not in fake_telegram.methods()
    (sent,) = fake_telegram.sent
    assert fake_telegram.photos == [control.charts["llama-ft"]]
    assert sent["text"].startswith(f"<code>{LLAMA_LINE}</code>")
    assert "step 41200 loss 1.93" in sent["text"]
