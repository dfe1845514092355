"""A chat answer that carries the run's chart: one photo whose caption is the answer when it
fits Telegram's caption limit, else the answer and then the photo.

Called by bot/handlers.py for /status; the outbox's notifier (bot/notifier.py) does the same for
the messages the watcher sends on its own.
"""

from __future__ import annotations

import html

from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message

CAPTION_LIMIT = 1024  # Telegram's limit on a photo's caption, in UTF-16 code units
HTML = "HTML"


def telegram_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def send_reply(
    message: Message, text: str, keyboard: InlineKeyboardMarkup | None, chart: bytes | None
) -> None:
    if chart is None:
        await message.answer(text, parse_mode=HTML, reply_markup=keyboard)
        return
    photo = BufferedInputFile(chart, filename="chart.png")
    if telegram_len(text) <= CAPTION_LIMIT:
        await message.answer_photo(photo, caption=text, parse_mode=HTML, reply_markup=keyboard)
        return
    await message.answer(text, parse_mode=HTML, reply_markup=keyboard)
    await message.answer_photo(photo, caption=html.escape("the run's metrics"), parse_mode=HTML)
