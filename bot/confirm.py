"""Buttons: the row under a loud alert (Kill, Teardown, Extend 2h, Mute 1h, Status) and the
Confirm/Cancel question that Kill and Teardown ask first. aiogram CallbackData factories; each
button carries a nonce, never a run name, and the nonce is stored (core/store_buttons.py), so a
press after `serve` restarted still works, or says clearly that it expired.

Used by the Telegram notifier (alert rows) and the chat handlers (bot/handlers.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from core.store_buttons import ButtonRow
from core.topics import Action as AlertAction

Action = Literal["kill", "teardown"]
Verb = Literal["ok", "no"]
CONFIRM_TTL_S = 60.0
ALERT_BUTTON_TTL_S = 7 * 86400.0  # an alert's buttons work for a week, restarts included


class ConfirmButton(CallbackData, prefix="sw"):
    """Confirm (`ok`) or Cancel (`no`) of one pending question: `sw:ok:<nonce>`."""

    verb: str
    nonce: str


class AlertButton(CallbackData, prefix="sa"):
    """One action under an alert: `sa:teardown:<nonce>`."""

    act: str
    nonce: str


class ButtonStore(Protocol):
    """The part of core.store.Store that keeps button nonces."""

    async def put_button(self, row: ButtonRow) -> None: ...

    async def get_button(self, nonce: str) -> ButtonRow | None: ...

    async def use_button(self, nonce: str, at: datetime) -> bool: ...


class MemoryButtons:
    """A ButtonStore in memory, for a dispatcher built without a store (some tests): its
    buttons die with the process, which is the safe side."""

    def __init__(self) -> None:
        self._rows: dict[str, ButtonRow] = {}

    async def put_button(self, row: ButtonRow) -> None:
        self._rows[row.nonce] = row

    async def get_button(self, nonce: str) -> ButtonRow | None:
        return self._rows.get(nonce)

    async def use_button(self, nonce: str, at: datetime) -> bool:
        row = self._rows.get(nonce)
        if row is None or row.used_at is not None:
            return False
        self._rows[nonce] = replace(row, used_at=at)
        return True


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True, slots=True)
class PendingAction:
    action: Action
    run: str
    chat_id: int
    user_id: int | None  # who asked: only they can confirm (a group has other members)
    issued_at: datetime


class Confirmations:
    """Two-step actions (/kill, /teardown, and the Kill and Teardown buttons): a nonce per
    question, answered once, valid for `ttl_s`, kept in `store` across restarts."""

    def __init__(
        self,
        store: ButtonStore | None = None,
        ttl_s: float = CONFIRM_TTL_S,
        new_nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self.store: ButtonStore = store if store is not None else MemoryButtons()
        self.ttl_s = ttl_s
        self._new_nonce = new_nonce

    async def issue(
        self, action: Action, run: str, chat_id: int, user_id: int | None, now: datetime
    ) -> str:
        nonce = self._new_nonce()
        row = ButtonRow(nonce, "confirm", (action,), run, chat_id, user_id, now)
        await self.store.put_button(row)
        return nonce

    async def take(
        self, nonce: str, chat_id: int | None, user_id: int | None, now: datetime
    ) -> PendingAction | None:
        """The pending question asked in `chat_id` by `user_id`, answered now: a second press
        finds nothing. A press from any other chat or by any other member of a group finds
        nothing either, and leaves the question open for the one who asked."""
        row = await self.store.get_button(nonce)
        if row is None or row.kind != "confirm" or row.used_at is not None:
            return None
        if row.chat_id != chat_id or row.user_id != user_id or row.actions[0] not in _ACTIONS:
            return None
        if not await self.store.use_button(nonce, now):
            return None
        action: Action = "kill" if row.actions[0] == "kill" else "teardown"
        return PendingAction(action, row.run, row.chat_id, row.user_id, row.issued_at)

    def expired(self, pending: PendingAction, now: datetime) -> bool:
        return (now - pending.issued_at).total_seconds() > self.ttl_s


_ACTIONS = ("kill", "teardown")


def confirm_keyboard(nonce: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text="Confirm", callback_data=ConfirmButton(verb="ok", nonce=nonce).pack()
                ),
                InlineKeyboardButton(
                    text="Cancel", callback_data=ConfirmButton(verb="no", nonce=nonce).pack()
                ),
            ]
        ]
    )


def parse_callback(data: str) -> tuple[Verb, str] | None:
    """A Confirm/Cancel press, or None for anything else (a forged or an old format)."""
    try:
        button = ConfirmButton.unpack(data)
    except (ValueError, TypeError):
        return None
    if not button.nonce or button.verb not in ("ok", "no"):
        return None
    return ("ok" if button.verb == "ok" else "no"), button.nonce


def alert_keyboard(actions: Sequence[AlertAction], nonce: str) -> InlineKeyboardMarkup:
    """The buttons of a loud alert: the destructive ones on the first row, the rest below."""
    buttons = [
        InlineKeyboardButton(
            text=action.label, callback_data=AlertButton(act=action.value, nonce=nonce).pack()
        )
        for action in actions
    ]
    rows = [[b for a, b in zip(actions, buttons, strict=True) if a.destructive]]
    rows.append([b for a, b in zip(actions, buttons, strict=True) if not a.destructive])
    return InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])
