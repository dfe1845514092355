"""Untrusted text (log lines, error messages, anything from the instance) made safe to show:
the one home of the cleaning rule. Pure.

Who calls it: every place that shows such text to a human or writes it in a line of ours: the
message builders (core/messages.py), the console notifier (core/console.py), the Telegram
renderer (bot/render.py, which escapes for HTML after cleaning), the status line
(core/statusline.py), the supervisor client's error previews (core/supervisor_client.py),
the record of a failing check (core/check_failures.py) and /status's log tail (core/control.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# CSI (colours, cursor moves), OSC (titles, hyperlinks) and the remaining two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
# C0 controls except tab/newline, DEL, C1 controls, lone surrogates, non-characters.
_INVALID = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")

MAX_LINE_CHARS = 400  # a line longer than this is shown by its start and its end


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


def clean_lines(lines: Iterable[str]) -> list[str]:
    """Clean each line; an element holding several lines is split into them."""
    out: list[str] = []
    for line in lines:
        out.extend(clean_line(part) for part in line.split("\n"))
    return out


def capped_line(line: str) -> str:
    """One printable line (clean_line), at most MAX_LINE_CHARS: a longer one keeps its start
    and its end, where an error message on a huge line usually is."""
    cleaned = clean_line(line)
    if len(cleaned) <= MAX_LINE_CHARS:
        return cleaned
    half = MAX_LINE_CHARS // 2 - 2
    return f"{cleaned[:half]} … {cleaned[-half:]}"


def capped_lines(text: str) -> list[str]:
    """A block of log text as capped lines. Newlines only: a `\\r` redraw (tqdm) is the same
    line drawn again, and clean_line keeps its final state; splitlines() would turn every
    redraw into a line of its own."""
    return [capped_line(line) for line in text.removesuffix("\n").split("\n")]
