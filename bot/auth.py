"""The allow-list: updates from chats not listed (or, when `[telegram] user_ids` is set, from
senders not listed) get no answer at all and one audit row.

An outer aiogram middleware installed by bot/telegram.build_dispatcher, before any handler runs;
every update it sees is audited in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, Update, User

from core.ports import Clock

log = logging.getLogger(__name__)

AUDIT_TEXT_MAX = 256


class AuditLog(Protocol):
    """The part of core.store.Store that records who asked what (parameters, never SQL text)."""

    async def audit(
        self,
        *,
        at: datetime,
        chat_id: int | None,
        user_id: int | None,
        command: str,
        verdict: str,
    ) -> object: ...


def update_text(update: Update) -> str:
    """What the update asked for, for the audit log: a message's text, a button's data."""
    message = (
        update.message or update.edited_message or update.channel_post or update.edited_channel_post
    )
    if message is not None:
        kind = getattr(message.content_type, "value", message.content_type)  # an enum member
        return (message.text or message.caption or f"<{kind}>")[:AUDIT_TEXT_MAX]
    if update.callback_query is not None:
        return f"button {update.callback_query.data or ''}"[:AUDIT_TEXT_MAX]
    return f"<{update.event_type}>"


class AllowListMiddleware(BaseMiddleware):
    """Outer middleware on `dp.update`; runs after aiogram's own user-context middleware,
    which puts the update's chat and sender into `data`."""

    def __init__(
        self,
        chat_ids: Collection[int],
        audit: AuditLog,
        clock: Clock,
        user_ids: Collection[int] = (),
    ) -> None:
        self._chat_ids = frozenset(chat_ids)
        self._user_ids = frozenset(user_ids)  # empty: every member of an allowed chat
        self._audit = audit
        self._clock = clock

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat: Chat | None = data.get("event_chat")
        user: User | None = data.get("event_from_user")
        if chat is not None and chat.id in self._chat_ids and self._user_allowed(user):
            return await handler(event, data)
        text = update_text(event) if isinstance(event, Update) else type(event).__name__
        log.warning(
            "refused an update from chat %s, user %s",
            chat.id if chat else None,
            user.id if user else None,
        )
        await self._audit.audit(
            at=self._clock(),
            chat_id=chat.id if chat else None,
            user_id=user.id if user else None,
            command=text,
            verdict="refused",
        )
        return None

    def _user_allowed(self, user: User | None) -> bool:
        if not self._user_ids:
            return True
        return user is not None and user.id in self._user_ids
