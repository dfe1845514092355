"""Telegram HTML rendering: escaped, cleaned, never over 4096 characters."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.render import render_message, render_runs, render_status, tg_len
from core.models import MessageKind, OutboundMessage, RunView
from tests.bot.conftest import LLAMA_LINE, T0, FakeControl


def traceback_lines(count: int) -> tuple[str, ...]:
    frames = [f'  File "/workspace/train.py", line {i}, in step_{i}' for i in range(count - 1)]
    return (
        "Traceback (most recent call last):",
        *frames[1:],
        "RuntimeError: CUDA error: <oom> & more",
    )


def alert(**overrides) -> OutboundMessage:
    fields = {
        "kind": MessageKind.ALERT,
        "title": "llama-ft: traceback in the log",
        "run": "llama-ft",
        "status_line": LLAMA_LINE,
        "reasons": ("traceback in new log text", "step stale for 2 checks"),
        "log_lines": ("ok",),
    }
    return OutboundMessage(**(fields | overrides))


def test_a_10000_line_traceback_fits_in_one_message_with_the_status_line_intact():
    text = render_message(alert(log_lines=traceback_lines(10_000)))

    assert len(text) < 4096 and tg_len(text) <= 4096
    assert text.split("\n")[:2] == [
        "<b>llama-ft: traceback in the log</b>",
        f"<code>{LLAMA_LINE}</code>",
    ]
    assert "• traceback in new log text\n• step stale for 2 checks" in text
    assert "RuntimeError: CUDA error: &lt;oom&gt; &amp; more</pre>" in text
    assert re.search(r"<pre>… \d+ lines cut\n", text)


def test_html_that_would_break_telegrams_parser_is_escaped():
    text = render_message(
        alert(title="<b>bold</b> & co", reasons=("</pre><script>",), log_lines=("a </pre> b &",))
    )

    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text
    assert "• &lt;/pre&gt;&lt;script&gt;" in text
    assert "<pre>a &lt;/pre&gt; b &amp;</pre>" in text
    assert text.count("<pre>") == text.count("</pre>") == 1


def test_ansi_escapes_nuls_and_invalid_characters_are_removed():
    text = render_message(
        alert(log_lines=("\x1b[31mred\x1b[0m\x00 nul \ud800 \x07bell", "10%\r50%\r100% done"))
    )

    assert "<pre>red nul  bell\n100% done</pre>" in text
    text.encode("utf-8")  # no lone surrogate survives


def test_a_terminal_message_carries_its_summary():
    summary = (("duration", "7h12m"), ("attempts", "2/3"), ("instance", "destroyed"))
    text = render_message(
        OutboundMessage(
            MessageKind.TERMINAL, "llama-ft done", status_line=LLAMA_LINE, summary=summary
        )
    )

    assert text.endswith("duration: <b>7h12m</b>\nattempts: <b>2/3</b>\ninstance: <b>destroyed</b>")


def test_hundreds_of_huge_reasons_still_fit_and_keep_the_status_line():
    text = render_message(alert(reasons=tuple("&" * 5000 for _ in range(300)), log_lines=()))

    assert tg_len(text) <= 4096
    assert text.startswith(f"<b>llama-ft: traceback in the log</b>\n<code>{LLAMA_LINE}</code>")
    assert "more reasons" in text


def test_wide_characters_are_counted_as_telegram_counts_them():
    text = render_message(alert(log_lines=tuple("🔥" * 300 for _ in range(100))))

    assert tg_len(text) <= 4096


async def test_runs_shows_live_first_cost_and_muted():
    control = FakeControl()
    await control.mute("llama-ft", 7200, T0)
    text = render_runs(await control.list_runs(T0), T0)

    assert text.startswith("<b>Runs: 1 live, 1 ended</b>\n<pre>")
    assert "muted until 05:12:09Z" in text
    assert "ended · $3.10 so far · instance destroyed" in text


def test_runs_with_nothing_to_show():
    assert render_runs([], T0) == "<b>No runs yet</b>"


async def test_status_of_an_ended_run_has_no_cadence():
    view = await FakeControl().view("llava-eval", T0 + timedelta(days=1))
    text = render_status(view, T0)

    assert "cadence" not in text and "instance: 8800001" in text


def test_runs_lists_a_kept_instance_first_and_projects_a_live_run():
    from dataclasses import replace

    views = [
        RunView(
            name="live-run",
            live=True,
            status_line=LLAMA_LINE,
            cost_usd=2.0,
            dph_total=0.5,
            projected_usd=3.5,
            cost_limit_usd=10.0,
        ),
        RunView(name="old", live=False, status_line="x done old", cost_usd=1.0),
    ]
    kept = replace(views[1], name="kept-run", status_line="y done kept-run", kept=True)
    text = render_runs([*views, kept], T0)
    assert text.startswith("<b>Runs: 1 live, 2 ended, 1 kept instance billing</b>")
    assert text.index("done kept-run") < text.index(LLAMA_LINE) < text.index("done old")
    assert "KEPT: instance still billing (/teardown or /keep)" in text
    assert "$2.00 so far at $0.50/h · ~$3.50 projected to the last step · max_cost $10.00" in text
