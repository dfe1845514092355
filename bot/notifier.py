"""The Telegram notifier: delivers one stored message (text, buttons, the run's chart) to every
allowed chat, and turns aiogram's errors into DeliveryError (a wait asked for, transient,
permanent, or the token refused), never with the token in them.

Built by bot/app.py (the chat front end) and drained by core.outbox.OutboxSender; bot.telegram
re-exports its names.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from hashlib import sha256

from aiogram import Bot
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.charts import CAPTION_LIMIT, chart_file, fitting_caption
from bot.confirm import ButtonStore, alert_keyboard, new_nonce
from bot.redact import redact
from bot.render import render_message
from core.errors import DeliveryError, SleepwatchError
from core.models import OutboundMessage
from core.ports import Clock
from core.store_buttons import ButtonRow

log = logging.getLogger(__name__)

_PERMANENT = (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramMigrateToChat,
)


def delivery_error(exc: AiogramError, token: str = "") -> DeliveryError:
    """aiogram's exceptions in sleepwatch's terms: a wait asked for, transient, permanent, or
    the token refused (every message then waits for a token that works). The text never
    holds the token."""
    text = redact(str(exc), token) if token else str(exc)
    if isinstance(exc, TelegramRetryAfter):
        return DeliveryError(f"telegram flood control: {text}", retry_after_s=exc.retry_after)
    if isinstance(exc, TelegramUnauthorizedError):
        return DeliveryError(
            f"telegram refused the bot token ({text}): check SLEEPWATCH_TELEGRAM_TOKEN",
            credentials_refused=True,
        )
    if isinstance(exc, _PERMANENT):
        return DeliveryError(f"telegram refused: {text}", permanent=True)
    return DeliveryError(f"telegram unavailable: {text}")


class TelegramNotifier:
    """Sends a message to its chat, or to every allowed chat. A broadcast that failed half-way
    is retried by the outbox; chats that already have it are skipped (remembered by content).
    A silent message goes with `disable_notification`; a loud one with its buttons, whose
    nonce is stored in `buttons` first (without a store, no buttons are offered)."""

    def __init__(
        self,
        bot: Bot,
        chat_ids: Collection[int],
        buttons: ButtonStore | None = None,
        clock: Clock = lambda: datetime.now(UTC),
        new_nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self._bot = bot
        self._chat_ids = tuple(chat_ids)
        self._partial: dict[str, set[tuple[int, int]]] = {}
        self._buttons = buttons
        self._clock = clock
        self._new_nonce = new_nonce

    async def _keyboard(
        self, message: OutboundMessage, chat_id: int
    ) -> InlineKeyboardMarkup | None:
        """The alert's buttons, then one row of the links its log printed (W&B, Hub…)."""
        alert = await self._alert_keyboard(message, chat_id)
        rows = list(alert.inline_keyboard) if alert else []
        if message.links:
            rows.append([InlineKeyboardButton(text=t, url=url) for t, url in message.links])
        return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None

    async def _alert_keyboard(
        self, message: OutboundMessage, chat_id: int
    ) -> InlineKeyboardMarkup | None:
        if not (message.loud and message.actions and message.run and self._buttons):
            return None
        nonce = self._new_nonce()
        actions = tuple(a.value for a in message.actions)
        row = ButtonRow(nonce, "alert", actions, message.run, chat_id, None, self._clock())
        await self._buttons.put_button(row)  # first: a button never points at nothing
        return alert_keyboard(message.actions, nonce)

    async def deliver(self, message: OutboundMessage) -> None:
        text = render_message(message)
        targets = (message.chat_id,) if message.chat_id is not None else self._chat_ids
        key = sha256(f"{targets}\0{text}".encode()).hexdigest()
        done = self._partial.setdefault(key, set())
        photo = await _chart_bytes(message.chart)
        for chat_id in targets:
            parts = range(len(self._sends(message, text, photo, None)))
            if all((chat_id, part) in done for part in parts):
                continue
            try:
                keyboard = await self._keyboard(message, chat_id)
            except SleepwatchError as exc:  # the store failed: send it without buttons
                log.warning("alert buttons not stored, sent without them: %s", exc)
                keyboard = None
            for part, send in enumerate(self._sends(message, text, photo, keyboard)):
                if (chat_id, part) in done:
                    continue
                try:
                    await send(chat_id)
                except (TelegramAPIError, ClientDecodeError) as exc:
                    # the cause's text may hold the URL with the token: logged tracebacks
                    # pass through RedactToken
                    raise delivery_error(exc, self._bot.token) from exc
                done.add((chat_id, part))
        del self._partial[key]

    def _sends(
        self,
        message: OutboundMessage,
        text: str,
        photo: bytes | None,
        keyboard: InlineKeyboardMarkup | None,
    ) -> list[Callable[[int], Awaitable[object]]]:
        """One message; with a chart, the chart with the text as its caption, or, when the
        text is too long for a caption, the text and then the chart (silent: one buzz). The
        buttons go under the text."""
        silent = not message.loud  # silent unless a human is needed (core.topics)

        async def text_message(chat_id: int) -> object:
            return await self._bot.send_message(
                chat_id,
                text,
                parse_mode="HTML",
                disable_notification=silent,
                reply_markup=keyboard,
            )

        if photo is None:
            return [text_message]
        fits = fitting_caption(text) is not None
        caption = text if fits else html.escape(message.title)[: CAPTION_LIMIT // 2]

        async def chart(chat_id: int) -> object:
            return await self._bot.send_photo(
                chat_id,
                chart_file(photo),
                caption=caption,
                parse_mode="HTML",
                disable_notification=silent or not fits,
                reply_markup=keyboard if fits else None,
            )

        return [chart] if fits else [text_message, chart]


CHART_MAX_BYTES = 5 << 20


async def _chart_bytes(path: str | None) -> bytes | None:
    """The chart's PNG, or None (no chart, or its file gone or too big: the text goes alone)."""
    if not path:
        return None

    def read() -> bytes | None:
        with open(path, "rb") as fh:
            data = fh.read(CHART_MAX_BYTES + 1)
        return data if len(data) <= CHART_MAX_BYTES else None

    try:
        return await asyncio.to_thread(read)
    except OSError:
        return None
