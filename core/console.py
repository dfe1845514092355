"""The console notifier: plain-text messages on a stream. The default when no Telegram token is
set, and what the demo prints. Rendering and text cleaning are pure and shared with bot/render."""

from __future__ import annotations

import re
import sys
from typing import TextIO

from core.models import OutboundMessage

# CSI (colours, cursor moves), OSC (titles, hyperlinks) and the remaining two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
# C0 controls except tab/newline, DEL, C1 controls, lone surrogates, non-characters.
_INVALID = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")

LOG_INDENT = "    "


def clean_line(text: str) -> str:
    """One line of untrusted text made safe to show: escapes and invalid characters removed.
    A carriage return keeps what a terminal would show (the text after the last one), which
    turns progress-bar redraws into their final state."""
    text = _ANSI.sub("", text)
    if "\r" in text:
        segments = [s for s in text.split("\r") if s]
        text = segments[-1] if segments else ""
    text = text.replace("\n", " ").replace("\t", "    ")
    return _INVALID.sub("", text)


def clean_lines(lines: tuple[str, ...] | list[str]) -> list[str]:
    """Clean each line; an element holding several lines is split into them."""
    out: list[str] = []
    for line in lines:
        out.extend(clean_line(part) for part in line.split("\n"))
    return out


def render_plain(message: OutboundMessage, *, status_line: bool = True) -> str:
    """Status line, `[kind] title`, `- reason` lines, indented log lines, `key: value` lines.
    `status_line=False` where the check's own status line was just printed on the same stream."""
    parts: list[str] = []
    if message.status_line and status_line:
        parts.append(clean_line(message.status_line))
    parts.append(f"[{message.kind.value}] {clean_line(message.title)}")
    parts.extend(f"- {clean_line(reason)}" for reason in message.reasons)
    parts.extend(f"{LOG_INDENT}{line}" for line in clean_lines(message.log_lines))
    parts.extend(f"{clean_line(key)}: {clean_line(value)}" for key, value in message.summary)
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
