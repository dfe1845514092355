"""Plain-text rendering of the console notifier."""

from __future__ import annotations

import io

from core.console import ConsoleNotifier, render_plain
from core.models import MessageKind, OutboundMessage
from core.text import clean_line


def test_a_message_renders_as_plain_lines():
    message = OutboundMessage(
        kind=MessageKind.TERMINAL,
        title="llama-ft done",
        status_line="2026-11-28T09:00:00Z done 2/3 90000/90000 - - oom llama-ft",
        reasons=("completed",),
        log_lines=("step 90000 loss 1.2\nsaved checkpoint",),
        summary=(("duration", "6h"), ("instance", "destroyed")),
    )

    assert render_plain(message) == (
        "2026-11-28T09:00:00Z done 2/3 90000/90000 - - oom llama-ft\n"
        "[terminal] llama-ft done\n"
        "- completed\n"
        "duration: 6h\n"  # a terminal message's verdict before its excerpt
        "instance: destroyed\n"
        "    step 90000 loss 1.2\n"
        "    saved checkpoint\n"
    )


def test_escapes_and_invalid_characters_are_removed():
    assert clean_line("\x1b[1;31mERR\x1b[0m\x00\x1b]0;title\x07 \ud800ok\tx") == "ERR ok    x"
    assert clean_line("10%\r100%\r") == "100%"


async def test_the_notifier_writes_to_its_stream():
    stream = io.StringIO()
    await ConsoleNotifier(stream).deliver(OutboundMessage(kind=MessageKind.INFO, title="hello"))

    assert stream.getvalue() == "[info] hello\n\n"
