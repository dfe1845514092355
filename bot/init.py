"""`sleepwatch init`: setup in one command. Asks for (or takes as flags) the bot token and the
Vast key, checks the token with getMe, finds the chat id from the first message sent to the bot
(a bounded getUpdates long poll), says hello in that chat, checks the Vast key with one cheap
authenticated GET through the Vast adapter, then writes the config and the secrets file
(bot/init_file.py). Nothing is written until every check passed; the token is never printed.

Called by core/cli.py (the `init` verb) through bot/app.py, which plugs it in: it needs aiogram.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramUnauthorizedError,
)
from aiogram.utils.token import TokenValidationError
from pydantic import SecretStr

from bot.init_file import Setup, env_path, write_setup
from bot.telegram import build_bot, redact, redact_logs
from core.config_sections import VastConfig
from core.errors import ProviderError, SleepwatchError
from core.providers.vast import VastProvider

HELLO = "sleepwatch is set up: alerts and answers about your runs come to this chat."
LONG_POLL_S = 25  # one getUpdates wait; the whole wait is --wait


class InitError(SleepwatchError):
    """A check failed or an answer is missing; the message says what to do. Nothing written."""

    permanent = True


def _secret(
    given: str | None,
    found: str | None,
    question: str,
    ask: Callable[[str], str] | None,
) -> str | None:
    value = given or found or (ask(question) if ask is not None else None)
    return value.strip() if value and value.strip() else None


async def run_init(
    args: argparse.Namespace,
    *,
    say: Callable[[str], None] = print,
    ask_secret: Callable[[str], str] = getpass.getpass,
    environ: Mapping[str, str] = os.environ,
) -> int:
    path: Path = (args.path or args.config).expanduser()
    for existing in (path, env_path(path)):
        if existing.exists() and not args.force:
            raise InitError(f"{existing} exists: not overwritten (--force to replace it)")
    ask = None if args.non_interactive else ask_secret
    found = environ.get("SLEEPWATCH_TELEGRAM_TOKEN")
    token = _secret(args.token, found, "Bot token from @BotFather: ", ask)
    if token is None:
        raise InitError(
            "no bot token: make a bot with @BotFather (/newbot) and pass --token or set "
            "SLEEPWATCH_TELEGRAM_TOKEN"
        )
    setup = await _telegram(args, token, say)
    found = environ.get("VAST_API_KEY")
    vast_key = _secret(args.vast_key, found, "Vast.ai API key (Enter: none): ", ask)
    if vast_key is not None:
        await check_vast(vast_key, args.vast_api_base or VastConfig().api_base)
        say("Vast.ai: the key is accepted.")
    else:
        say("Vast.ai: no key given; a run on a Vast instance needs VAST_API_KEY.")
    env = write_setup(path, setup, token, vast_key, args.force)
    # the file other commands find without being told: not one named by --path or --config
    found_anyway = args.path is None and args.config_why != "--config"
    say(next_steps(path, env, found_anyway))
    return 0


async def _telegram(args: argparse.Namespace, token: str, say: Callable[[str], None]) -> Setup:
    try:
        bot = build_bot(SecretStr(token), args.telegram_api_base, timeout_s=LONG_POLL_S + 15)
    except TokenValidationError:
        raise InitError("that is not a bot token (@BotFather's look like 123456789:AA…)") from None
    redact_logs(SecretStr(token))
    try:
        me = await bot.get_me()
        username = me.username or str(me.id)
        say(f"Telegram: the token is accepted: the bot is @{username}.")
        user_id: int | None = None
        if args.chat_id is not None:
            chat_id = args.chat_id
        else:
            chat_id, user_id = await find_chat(bot, username, args.wait, say)
        await bot.send_message(chat_id, HELLO)
        say(f"Telegram: chat {chat_id} found; a hello was sent there.")
    except TelegramUnauthorizedError:
        raise InitError(
            "Telegram refused the token (401 Unauthorized): copy it again from @BotFather "
            "(/mybots → your bot → API Token)"
        ) from None
    except TelegramConflictError:
        raise InitError(
            "another program reads this bot's messages (a running `sleepwatch serve`, or a "
            "webhook): stop it, or pass --chat-id"
        ) from None
    except (TelegramNetworkError, TelegramAPIError) as exc:
        raise InitError(f"Telegram: {redact(str(exc), token)}") from None
    finally:
        await bot.session.close()
    return Setup(chat_id, user_id, username, args.telegram_api_base, args.vast_api_base)


async def find_chat(
    bot: Bot, username: str, wait_s: float, say: Callable[[str], None]
) -> tuple[int, int | None]:
    """The chat (and sender) of the first message the bot gets within `wait_s`; that update is
    then confirmed, so `serve` does not answer it later."""
    say(f"Send any message to @{username} in Telegram now (waiting up to {wait_s:.0f} s)…")
    deadline = time.monotonic() + wait_s
    offset: int | None = None
    while (left := deadline - time.monotonic()) > 0:
        poll_s = max(1, min(LONG_POLL_S, int(left)))
        for update in await bot.get_updates(offset=offset, timeout=poll_s):
            offset = update.update_id + 1
            message = update.message
            if message is not None:
                await bot.get_updates(offset=offset, timeout=0)
                return message.chat.id, message.from_user.id if message.from_user else None
    raise InitError(
        f"no message reached @{username} within {wait_s:.0f} s: send it one and run "
        "`sleepwatch init` again (or pass --chat-id)"
    )


async def check_vast(key: str, api_base: str) -> None:
    async with VastProvider(api_base, SecretStr(key), max_retries=1, timeout_s=20) as vast:
        try:
            await vast.check_key()
        except ProviderError as exc:
            raise InitError(f"Vast.ai: {exc}") from None


def next_steps(config: Path, env: Path, found_anyway: bool) -> str:
    flag = "" if found_anyway else f" --config {shlex.quote(str(config))}"
    return "\n".join(
        [
            f"Wrote {config} (the settings) and {env} (the secrets), both readable by you only.",
            "sleepwatch reads the secrets from that file beside its config (the environment wins).",
            "Next:",
            "  sleepwatch demo                    # see it work here, no accounts used",
            f"  edit the [[runs]] entry in {config}, then:",
            f"  sleepwatch{flag} launch NAME && sleepwatch{flag} serve",
        ]
    )
