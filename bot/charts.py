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


def fitting_caption(text: str) -> str | None:
    """`text` when it fits a photo's caption; None: send the text, then the photo."""
    return text if telegram_len(text) <= CAPTION_LIMIT else None


def chart_file(png: bytes) -> BufferedInputFile:
    return BufferedInputFile(png, filename="chart.png")


async def send_reply(
    message: Message, text: str, keyboard: InlineKeyboardMarkup | None, chart: bytes | None
) -> None:
    if chart is None:
        await message.answer(text, parse_mode=HTML, reply_markup=keyboard)
        return
    photo = chart_file(chart)
    caption = fitting_caption(text)
    if caption is not None:
        await message.answer_photo(photo, caption=caption, parse_mode=HTML, reply_markup=keyboard)
        return
    await message.answer(text, parse_mode=HTML, reply_markup=keyboard)
    await message.answer_photo(photo, caption=html.escape("the run's metrics"), parse_mode=HTML)
