"""The console notifier: plain-text messages on a stream. The default when no Telegram token is
set, and what the demo prints. Rendering is pure; the text cleaning is core.text's (one rule
for every place that shows untrusted text, bot/render included).

Chosen by the CLI (core/cli.py) when no chat front end is configured, and by core/demo.py.
"""

from __future__ import annotations

import sys
from typing import TextIO

from core.models import MessageKind, OutboundMessage
from core.text import clean_line, clean_lines

LOG_INDENT = "    "


def render_plain(message: OutboundMessage, *, status_line: bool = True) -> str:
    """Status line, `[kind] title`, `- reason` lines, indented log lines, `key: value` lines.
    `status_line=False` where the check's own status line was just printed on the same stream."""
    parts: list[str] = []
    if message.status_line and status_line:
        parts.append(clean_line(message.status_line))
    parts.append(f"[{message.kind.value}] {clean_line(message.title)}")
    parts.extend(f"- {clean_line(reason)}" for reason in message.reasons)
    log = [f"{LOG_INDENT}{line}" for line in clean_lines(message.log_lines)]
    summary = [f"{clean_line(key)}: {clean_line(value)}" for key, value in message.summary]
    if message.chart:
        summary.append(f"chart: {clean_line(message.chart)}")
    summary.extend(f"{clean_line(label)}: {clean_line(url)}" for label, url in message.links)
    # a terminal message's verdict (its summary) before its excerpt, as in Telegram
    terminal = message.kind is MessageKind.TERMINAL
    parts.extend([*summary, *log] if terminal else [*log, *summary])
    return "\n".join(parts) + "\n"


class ConsoleNotifier:
    """Notifier that prints each message followed by a blank line. Never raises DeliveryError:
    a console that cannot be written to is a bug to see, not a delivery to retry."""

    def __init__(self, stream: TextIO | None = None, *, status_lines: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._status_lines = status_lines

    async def deliver(self, message: OutboundMessage) -> None:
        self._stream.write(render_plain(message, status_line=self._status_lines) + "\n")
        self._stream.flush()
