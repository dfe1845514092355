"""aiogram at the seam: building the Bot and Dispatcher, the Telegram notifier (aiogram's
errors turned into DeliveryError), command registration and polling that survives start-up
without Telegram.

Built by bot/app.py (the chat front end plugged into the CLI); its notifier is drained by
core.outbox.OutboxSender.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, tzinfo
from hashlib import sha256
from typing import Protocol
from urllib.parse import quote

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import BotCommand, BufferedInputFile, InlineKeyboardMarkup
from pydantic import SecretStr

from bot.auth import AllowListMiddleware, AuditLog
from bot.commands import COMMANDS
from bot.confirm import ButtonStore, Confirmations, alert_keyboard, new_nonce
from bot.handlers import ChatCommands
from bot.render import render_message
from core.errors import DeliveryError, SleepwatchError
from core.models import OutboundMessage
from core.ports import Clock, Control
from core.store_buttons import ButtonRow

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
_PERMANENT = (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramMigrateToChat,
)
REDACTED = "<token>"
_TRANSIENT_STARTUP = (TelegramNetworkError, TelegramServerError, TelegramRetryAfter)


def build_bot(token: SecretStr, api_base: str | None = None, *, timeout_s: float = 60.0) -> Bot:
    """A Bot on aiogram's aiohttp session; `api_base` points it at another Bot API server.
    `timeout_s` bounds each request (long polls get it on top of their own wait), so a Bot API
    that accepts the connection and never answers holds the outbox up that long at most."""
    session = (
        AiohttpSession(api=TelegramAPIServer.from_base(api_base), timeout=timeout_s)
        if api_base
        else AiohttpSession(timeout=timeout_s)
    )
    return Bot(
        token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(link_preview_is_disabled=True),
    )


class ChatStore(AuditLog, ButtonStore, Protocol):
    """What the chat needs of core.store.Store: the audit log and the button nonces."""


def build_dispatcher(
    control: Control,
    store: ChatStore,
    chat_ids: Collection[int],
    clock: Clock,
    confirmations: Confirmations | None = None,
    user_ids: Collection[int] = (),
    tz: tzinfo = UTC,
) -> Dispatcher:
    """Without `confirmations`, pending questions are kept in `store` (across restarts)."""
    dp = Dispatcher()
    dp.update.outer_middleware(AllowListMiddleware(chat_ids, store, clock, user_ids))
    commands = ChatCommands(control, store, clock, confirmations or Confirmations(store), tz)
    dp.include_router(commands.router())
    return dp


async def register_commands(bot: Bot) -> None:
    commands = [BotCommand(command=name, description=what) for name, (_, what) in COMMANDS.items()]
    await bot.set_my_commands(commands)


def redact(text: str, token: str) -> str:
    """`text` without the token, whole or its secret half, plain or URL-encoded (aiohttp puts
    the request URL, `/bot<token>/<method>`, into its errors: a redirect loop, a bad proxy)."""
    secret = token.split(":", 1)[-1]
    for form in (token, quote(token, safe=""), quote(token), secret, quote(secret, safe="")):
        if len(form) >= 8:
            text = text.replace(form, REDACTED)
    return text


class RedactToken(logging.Filter):
    """On the root logger's handlers: no log line (message, arguments or traceback) carries the
    token, whichever library wrote it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself
            return True
        record.msg = redact(message, self._token)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._token)
        return True


def redact_logs(token: SecretStr) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactToken(token.get_secret_value()))


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
        fits = _telegram_len(text) <= CAPTION_LIMIT
        caption = text if fits else html.escape(message.title)[: CAPTION_LIMIT // 2]

        async def chart(chat_id: int) -> object:
            return await self._bot.send_photo(
                chat_id,
                BufferedInputFile(photo, filename="chart.png"),
                caption=caption,
                parse_mode="HTML",
                disable_notification=silent or not fits,
                reply_markup=keyboard if fits else None,
            )

        return [chart] if fits else [text_message, chart]


CAPTION_LIMIT = 1024  # Telegram's limit on a photo's caption, in UTF-16 code units
CHART_MAX_BYTES = 5 << 20


def _telegram_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


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


async def _sleep_unless_stopped(sleep: Sleep, delay_s: float, stop: asyncio.Event) -> None:
    sleeper = asyncio.ensure_future(sleep(delay_s))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in (sleeper, stopper):
        task.cancel()
    await asyncio.gather(sleeper, stopper, return_exceptions=True)


async def start_polling_resilient(
    bot: Bot,
    dp: Dispatcher,
    stop: asyncio.Event | None = None,
    sleep: Sleep = asyncio.sleep,
    *,
    first_delay_s: float = 1.0,
    max_delay_s: float = 60.0,
    polling_timeout_s: int = 25,
    on_token: Callable[[str | None], None] | None = None,
) -> None:
    """Poll until `stop` is set (or the task is cancelled). While Telegram cannot be reached,
    at start-up or later, retry with a doubling delay; nothing else waits on this, so the
    watcher keeps watching. Deletes any webhook and registers the commands each (re)start.
    A refused token is retried every `max_delay_s` and told to `on_token` (the reason, then
    None once a token is accepted), which makes `sleepwatch health` fail meanwhile."""
    stop = stop if stop is not None else asyncio.Event()
    delay_s = first_delay_s
    while not stop.is_set():
        try:
            await bot.delete_webhook(drop_pending_updates=False)
            await register_commands(bot)
        except TelegramUnauthorizedError as exc:
            if on_token is not None:
                on_token(str(delivery_error(exc, bot.token)))
            await _sleep_unless_stopped(sleep, max_delay_s, stop)
            continue
        except (*_TRANSIENT_STARTUP, TelegramConflictError, ClientDecodeError) as exc:
            text = redact(str(exc), bot.token)
            log.warning("telegram unreachable (%s); retrying in %.0fs", text, delay_s)
            await _sleep_unless_stopped(sleep, delay_s, stop)
            delay_s = min(delay_s * 2, max_delay_s)
            continue
        if on_token is not None:
            on_token(None)
        delay_s = first_delay_s
        if await _poll_until_stopped(bot, dp, stop, polling_timeout_s):
            return
        await _sleep_unless_stopped(sleep, delay_s, stop)


async def _poll_until_stopped(
    bot: Bot, dp: Dispatcher, stop: asyncio.Event, timeout_s: int
) -> bool:
    """True when `stop` ended polling; False when polling itself ended (and may be restarted)."""
    polling = asyncio.create_task(
        dp.start_polling(
            bot, polling_timeout=timeout_s, handle_signals=False, close_bot_session=False
        )
    )
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({polling, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not polling.done():
            with contextlib.suppress(RuntimeError):  # polling had not started yet
                await dp.stop_polling()
            polling.cancel()
        stopper.cancel()
        await asyncio.gather(polling, stopper, return_exceptions=True)
    if stop.is_set():
        return True
    log.warning("telegram polling ended: %s", redact(str(polling.exception()), bot.token))
    return False
