"""Two-step actions (/kill, /teardown): a nonce per question, valid once, for `ttl_s`.

Used by bot/handlers.py: the question asks with a nonce, the button's answer spends it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

Action = Literal["kill", "teardown"]
Verb = Literal["ok", "no"]
CONFIRM_TTL_S = 60.0
_PREFIX = "sw"


@dataclass(frozen=True, slots=True)
class PendingAction:
    action: Action
    run: str
    chat_id: int
    user_id: int | None  # who asked: only they can confirm (a group has other members)
    issued_at: datetime


class Confirmations:
    """In memory on purpose: after a restart every old button is void, which is the safe side."""

    def __init__(
        self,
        ttl_s: float = CONFIRM_TTL_S,
        new_nonce: Callable[[], str] = lambda: secrets.token_urlsafe(12),
    ) -> None:
        self.ttl_s = ttl_s
        self._new_nonce = new_nonce
        self._pending: dict[str, PendingAction] = {}

    def issue(
        self, action: Action, run: str, chat_id: int, user_id: int | None, now: datetime
    ) -> str:
        self._forget_older_than(now - timedelta(seconds=self.ttl_s))
        nonce = self._new_nonce()
        self._pending[nonce] = PendingAction(action, run, chat_id, user_id, now)
        return nonce

    def take(self, nonce: str, chat_id: int | None, user_id: int | None) -> PendingAction | None:
        """The pending action asked in `chat_id` by `user_id`, removed: a second press finds
        nothing. A press from any other chat or by any other member of a group finds nothing
        either, and leaves the question open for the one who asked."""
        pending = self._pending.get(nonce)
        if pending is None or pending.chat_id != chat_id or pending.user_id != user_id:
            return None
        return self._pending.pop(nonce)

    def expired(self, pending: PendingAction, now: datetime) -> bool:
        return (now - pending.issued_at).total_seconds() > self.ttl_s

    def _forget_older_than(self, cutoff: datetime) -> None:
        for nonce in [n for n, p in self._pending.items() if p.issued_at < cutoff]:
            del self._pending[nonce]


def callback_data(verb: Verb, nonce: str) -> str:
    return f"{_PREFIX}:{verb}:{nonce}"


def parse_callback(data: str) -> tuple[Verb, str] | None:
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[2]:
        return None
    if parts[1] == "ok":
        return "ok", parts[2]
    if parts[1] == "no":
        return "no", parts[2]
    return None


def confirm_keyboard(nonce: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Confirm", callback_data=callback_data("ok", nonce)),
                InlineKeyboardButton(text="Cancel", callback_data=callback_data("no", nonce)),
            ]
        ]
    )
