"""The outermost composition root: `sleepwatch` with the Telegram front end plugged in.

core never imports bot; this module hands core's CLI a ChatFrontend (core/root.py) that, when
SLEEPWATCH_TELEGRAM_TOKEN is set, builds the aiogram Bot and Dispatcher and runs long polling in
the same event loop as the scheduler. It gets what it needs from the root's App (control, store,
scheduler, the outbox's wake), never through the engine. Called by bot/start.py (the script).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

from core.cli import main as core_main
from core.config import Config, Secrets
from core.ports import Notifier
from core.root import App
from core.runtime import utc_now
from core.store import Store


class TelegramFrontend:
    def __init__(self) -> None:
        self._bot: object | None = None
        self._chat_ids: list[int] = []

    async def open(
        self, config: Config, secrets: Secrets, stack: AsyncExitStack, store: Store
    ) -> Notifier | None:
        if secrets.telegram_token is None:
            return None
        from bot.telegram import TelegramNotifier, build_bot, redact_logs

        redact_logs(secrets.telegram_token)
        bot = build_bot(secrets.telegram_token, config.telegram.api_base)
        stack.push_async_callback(bot.session.close)
        self._bot = bot
        self._chat_ids = list(config.telegram.chat_ids)
        return TelegramNotifier(bot, self._chat_ids, buttons=store, clock=utc_now)

    async def run(self, app: App) -> None:
        from aiogram import Bot

        from bot.summary import enqueue_morning_summary
        from bot.telegram import build_dispatcher, start_polling_resilient

        bot = self._bot
        assert isinstance(bot, Bot)
        config = app.config
        hour, minute = (int(part) for part in config.telegram.summary_time.split(":"))

        async def morning() -> None:
            zone = config.telegram.zone
            await enqueue_morning_summary(app.control, app.store, utc_now(), tz=zone)
            app.wake_outbox()

        app.scheduler.add_cron(morning, hour, minute, config.telegram.zone_name)
        dispatcher = build_dispatcher(
            app.control,
            app.store,
            self._chat_ids,
            utc_now,
            user_ids=config.telegram.user_ids,
            tz=config.telegram.zone,
        )

        def on_token(problem: str | None) -> None:
            if problem is None:
                app.problems.pop("telegram", None)
            else:
                app.problems["telegram"] = problem

        # registers the commands itself, retrying while Telegram is unreachable
        await start_polling_resilient(bot, dispatcher, on_token=on_token)


async def init(args: argparse.Namespace) -> int:
    """`sleepwatch init` (bot/init.py): it checks the token through aiogram, so it lives here."""
    from bot.init import run_init

    return await run_init(args)


def main(argv: Sequence[str] | None = None) -> int:
    return core_main(argv, frontend=TelegramFrontend(), setup=init)


if __name__ == "__main__":
    sys.exit(main())
