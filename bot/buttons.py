"""The buttons under a loud alert (Kill, Teardown, Extend 2h, Mute 1h, Status): a press becomes
the command it stands for and gets the same answer and audit row as the typed command; Kill
and Teardown then ask to confirm, like /kill and /teardown.

Registered by bot/handlers.ChatCommands.router. A button's nonce is looked up in the store
(core/store_buttons.py): it works across restarts of `serve`, only in the chat it was sent to,
and says clearly when it expired or was never ours."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Protocol

from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.commands import Command, Extend, Kill, Mute, Status, Teardown
from bot.confirm import ALERT_BUTTON_TTL_S, AlertButton, ButtonStore
from bot.render import fmt_at
from core.ports import Clock
from core.store_buttons import ButtonRow
from core.topics import EXTEND_BUTTON_S, MUTE_BUTTON_S, Action

HTML = "HTML"


class Commands(Protocol):
    """What a press needs of bot/handlers.ChatCommands."""

    tz: tzinfo

    async def answer(
        self, command: Command, chat_id: int, user_id: int | None, now: datetime
    ) -> tuple[str, InlineKeyboardMarkup | None, str]: ...

    async def record(
        self, at: datetime, chat_id: int | None, user: int | None, what: str, verdict: str
    ) -> None: ...


def command_for(action: Action, run: str) -> Command:
    match action:
        case Action.KILL:
            return Kill(run)
        case Action.TEARDOWN:
            return Teardown(run)
        case Action.EXTEND:
            return Extend(run, EXTEND_BUTTON_S)
        case Action.MUTE:
            return Mute(run, MUTE_BUTTON_S)
        case Action.STATUS:
            return Status(run)


class AlertButtons:
    def __init__(self, commands: Commands, store: ButtonStore, clock: Clock) -> None:
        self._commands = commands
        self._store = store
        self._clock = clock

    async def on_press(self, query: CallbackQuery, callback_data: AlertButton) -> None:
        now = self._clock()
        chat_id = query.message.chat.id if query.message is not None else None
        user_id = query.from_user.id
        row = await self._store.get_button(callback_data.nonce)
        refusal = self._refusal(row, callback_data.act, chat_id, now)
        if refusal is not None or row is None or chat_id is None:
            await query.answer(refusal or "This button is no longer valid.", show_alert=True)
            what = f"button {callback_data.act}"
            await self._commands.record(now, chat_id, user_id, what, "expired")
            return
        action = Action(callback_data.act)
        command = command_for(action, row.run)
        reply, keyboard, verdict = await self._commands.answer(command, chat_id, user_id, now)
        await query.answer(action.label)
        if isinstance(query.message, Message):
            await query.message.answer(reply, parse_mode=HTML, reply_markup=keyboard)
        what = f"button {action.value} {row.run}"
        await self._commands.record(now, chat_id, user_id, what, verdict)

    def _refusal(
        self, row: ButtonRow | None, act: str, chat_id: int | None, now: datetime
    ) -> str | None:
        """Why this press does nothing, in words; None when it may act."""
        if row is None or row.kind != "alert" or act not in row.actions or row.chat_id != chat_id:
            return "This button is no longer valid."
        if act not in {a.value for a in Action}:
            return "This button is from another version of sleepwatch; use the commands."
        age_s = (now - row.issued_at).total_seconds()
        if age_s > ALERT_BUTTON_TTL_S:
            sent = fmt_at(row.issued_at, now, self._commands.tz)
            return (
                f"This button expired: its alert was sent {sent}. "
                f"Use /status {row.run[:64]} for the run as it is now."
            )
        return None
