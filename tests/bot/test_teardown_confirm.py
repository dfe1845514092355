"""/teardown acts only after Confirm, only once, only within 60 s, only from the chat asked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.telegram import build_dispatcher
from tests.bot.conftest import ALLOWED_CHAT, OTHER_ALLOWED_CHAT, STRANGER, T0, feed
from tests.fixtures.fake_telegram import callback_update, message_update


@pytest.fixture
async def prompt(dp, bot, fake_telegram):
    await feed(dp, bot, message_update(ALLOWED_CHAT, "/teardown llama", date=int(T0.timestamp())))
    return fake_telegram.sent[0]


def button(prompt, index: int) -> str:
    return prompt["reply_markup"]["inline_keyboard"][0][index]["callback_data"]


async def press(dp, bot, prompt, index: int, chat: int = ALLOWED_CHAT, update_id: int = 2) -> None:
    update = callback_update(chat, button(prompt, index), message_id=prompt["message_id"])
    await feed(dp, bot, update, update_id=update_id)


async def test_the_prompt_says_what_will_happen_and_the_price(prompt, control):
    assert "Destroy instance 8812345 of run <b>llama-ft</b> now?" in prompt["text"]
    assert "$0.41/h, $12.30 so far" in prompt["text"]
    labels = [b["text"] for b in prompt["reply_markup"]["inline_keyboard"][0]]
    assert labels == ["Confirm", "Cancel"]
    assert control.actions == []


async def test_confirm_tears_down_once(dp, bot, fake_telegram, prompt, control, store):
    await press(dp, bot, prompt, 0)
    await press(dp, bot, prompt, 0, update_id=3)

    assert control.actions == [("teardown", "llama-ft")]
    assert [a["text"] for a in fake_telegram.callback_answers] == [
        "Working…",
        "This button is no longer valid.",
    ]
    assert "destroyed (verified)" in fake_telegram.edits[0]["text"]
    verdicts = [r["verdict"] for r in await store.audit_rows(10)]
    assert verdicts == ["expired", "executed", "ok"]


async def test_cancel_does_nothing(dp, bot, fake_telegram, prompt, control):
    await press(dp, bot, prompt, 1)
    await press(dp, bot, prompt, 0, update_id=3)

    assert control.actions == []
    assert fake_telegram.callback_answers[0]["text"] == "Cancelled."
    assert fake_telegram.edits[0]["text"] == "Cancelled: /teardown llama-ft"


async def test_a_confirm_after_60_seconds_does_nothing(
    dp, bot, fake_telegram, prompt, control, clock
):
    clock.advance(61)
    await press(dp, bot, prompt, 0)

    assert control.actions == []
    assert fake_telegram.callback_answers[0]["text"] == "Too late: confirm within 60 s."


async def test_a_strangers_press_gets_no_answer_and_no_action(
    dp, bot, fake_telegram, prompt, control, store
):
    await press(dp, bot, prompt, 0, chat=STRANGER)

    assert control.actions == []
    assert fake_telegram.callback_answers == []
    assert (await store.audit_rows(1))[0]["verdict"] == "refused"
    await press(dp, bot, prompt, 0, update_id=3)  # the real owner can still confirm
    assert control.actions == [("teardown", "llama-ft")]


async def test_a_press_from_another_allowed_chat_does_not_act(dp, bot, prompt, control):
    await press(dp, bot, prompt, 0, chat=OTHER_ALLOWED_CHAT)

    assert control.actions == []
    await press(dp, bot, prompt, 0, update_id=3)  # the question stays open for its own chat
    assert control.actions == [("teardown", "llama-ft")]


async def test_the_run_is_read_again_when_confirmed(dp, bot, fake_telegram, prompt, control):
    control.views["llama-ft"] = replace(control.views["llama-ft"], teardown="destroyed")
    await press(dp, bot, prompt, 0)

    assert control.actions == []
    assert "already destroyed" in fake_telegram.edits[0]["text"]


async def test_a_forged_button_is_answered_and_ignored(dp, bot, fake_telegram, control):
    await feed(dp, bot, callback_update(ALLOWED_CHAT, "sw:ok:forged", message_id=5))

    assert control.actions == []
    assert fake_telegram.callback_answers[0]["text"] == "This button is no longer valid."


GROUP_MEMBER = 2002


async def test_another_member_of_the_chat_cannot_confirm_someone_elses_teardown(
    dp, bot, fake_telegram, prompt, control
):
    update = callback_update(
        ALLOWED_CHAT, button(prompt, 0), message_id=prompt["message_id"], user_id=GROUP_MEMBER
    )
    await feed(dp, bot, update, update_id=2)

    assert control.actions == []
    assert fake_telegram.callback_answers[0]["text"] == "This button is no longer valid."
    await press(dp, bot, prompt, 0, update_id=3)  # the one who asked still can
    assert control.actions == [("teardown", "llama-ft")]


async def test_with_user_ids_set_other_members_of_an_allowed_chat_get_no_answer(
    control, store, clock, confirmations, bot, fake_telegram
):
    dp = build_dispatcher(control, store, [ALLOWED_CHAT], clock, confirmations, user_ids=[7])
    sent_at = int(T0.timestamp())
    await feed(dp, bot, message_update(ALLOWED_CHAT, "/runs", date=sent_at, user_id=GROUP_MEMBER))

    assert fake_telegram.sent == []
    row = (await store.audit_rows(1))[0]
    assert (row["user_id"], row["verdict"]) == (GROUP_MEMBER, "refused")
    await feed(dp, bot, message_update(ALLOWED_CHAT, "/runs", date=sent_at, user_id=7), update_id=2)
    assert len(fake_telegram.sent) == 1
