"""aiogram at the seam: building the Bot and Dispatcher, command registration and polling that
survives start-up without Telegram. The notifier (aiogram's errors turned into DeliveryError)
is bot/notifier.py and the token's redaction bot/redact.py; both are re-exported here.

Built by bot/app.py (the chat front end plugged into the CLI); its notifier is drained by
core.outbox.OutboxSender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, tzinfo
from typing import Protocol

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import BotCommand
from pydantic import SecretStr

from bot.auth import AllowListMiddleware, AuditLog
from bot.charts import CAPTION_LIMIT as CAPTION_LIMIT
from bot.commands import COMMANDS
from bot.confirm import ButtonStore, Confirmations
from bot.handlers import ChatCommands
from bot.notifier import CHART_MAX_BYTES as CHART_MAX_BYTES
from bot.notifier import TelegramNotifier as TelegramNotifier
from bot.notifier import delivery_error as delivery_error
from bot.redact import REDACTED as REDACTED
from bot.redact import RedactToken as RedactToken
from bot.redact import redact as redact
from bot.redact import redact_logs as redact_logs
from core.ports import Clock, Control

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
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
