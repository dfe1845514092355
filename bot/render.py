"""Telegram HTML for what the watcher says. Pure. Everything untrusted is cleaned (ANSI, NULs,
invalid characters) and escaped, and no message exceeds Telegram's 4096 characters: the log
is cut (keeping its relevant end), never the status line or the reasons.

Called by bot/telegram.TelegramNotifier (every message the outbox sends), bot/handlers.py
(replies) and bot/summary.py.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

# the words of every answer live in core.answers (the CLI says the same); this module sets them
from core.answers import fmt_at as fmt_at
from core.answers import fmt_usd as fmt_usd
from core.answers import runs_text_lines, runs_title, status_answer
from core.models import MessageKind, OutboundMessage, RunView
from core.text import clean_line, clean_lines

TELEGRAM_LIMIT = 4096
LINE_MAX = 400
_HEAD_FIRST = (MessageKind.SUMMARY, MessageKind.INFO, MessageKind.REPLY)


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units), on the HTML source: an upper bound."""
    return len(text.encode("utf-16-le")) // 2


def esc(text: str, max_chars: int = LINE_MAX) -> str:
    """Cleaned, HTML-escaped, at most `max_chars` long once escaped (an ellipsis marks a cut)."""
    escaped = html.escape(clean_line(text), quote=False)
    if len(escaped) <= max_chars:
        return escaped
    out, used = [], 0
    for char in clean_line(text):
        piece = html.escape(char, quote=False)
        if used + len(piece) > max_chars - 1:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + "…"


def pre_block(lines: Sequence[str], budget: int, *, keep_tail: bool = True) -> str:
    """`<pre>` of as many lines as fit in `budget`, the cut ones counted in a note line.
    Returns "" when not even the note fits."""
    escaped = [esc(line) for line in clean_lines(list(lines))]
    chosen: list[str] = []
    used = tg_len("<pre></pre>") + tg_len(f"… {len(escaped)} lines cut\n")
    for line in reversed(escaped) if keep_tail else escaped:
        cost = tg_len(line) + 1
        if used + cost > budget:
            break
        chosen.append(line)
        used += cost
    if keep_tail:
        chosen.reverse()
    cut = len(escaped) - len(chosen)
    if cut:
        note = f"… {cut} lines cut"
        chosen = [note, *chosen] if keep_tail else [*chosen, note]
    if used > budget or not escaped:
        return ""
    return "<pre>" + "\n".join(chosen) + "</pre>"


# Summary values quoted from the instance (a log line, fix and failure kinds it named): code,
# not sleepwatch's own bold text.
INSTANCE_SUMMARY_KEYS = frozenset({"last metric", "fixes", "root cause"})


def _summary_line(key: str, value: str) -> str:
    if key in INSTANCE_SUMMARY_KEYS:
        return f"{esc(key, 60)}: <code>{esc(value, 200)}</code>"
    return f"{esc(key, 60)}: <b>{esc(value, 200)}</b>"


def _fixed_parts(message: OutboundMessage, budget: int) -> tuple[list[str], list[str]]:
    """Head (status lines, title, reasons) and summary lines within `budget`. Status lines and
    the title always stay; reasons, then summary pairs, give way from the end if need be."""
    # what happened, in words, first: a lock screen shows only the first line
    head = [f"<b>{esc(message.title)}</b>"]
    head += [f"<code>{esc(s)}</code>" for s in (message.status_line or "").split("\n") if s]
    reasons = [f"• {esc(r)}" for r in message.reasons]
    summary = [_summary_line(k, v) for k, v in message.summary]
    dropped = 0

    def size() -> int:
        note = [f"• … {dropped} more reasons"] if dropped else []
        return tg_len("\n".join(head + reasons + note + summary))

    while size() > budget and (reasons or summary):
        if reasons:
            reasons.pop()
            dropped += 1
        else:
            summary.pop()
    if dropped:
        reasons.append(f"• … {dropped} more reasons")
    return head + reasons, summary


def render_message(message: OutboundMessage, limit: int = TELEGRAM_LIMIT) -> str:
    """The title in bold, the status line(s) in <code>, the reasons, then the log in <pre> and
    the summary; a terminal message's summary (its verdict) comes before the log."""
    head_lines, summary_lines = _fixed_parts(message, limit - 400)
    head, tail = "\n".join(head_lines), "\n".join(summary_lines)
    fixed = tg_len(head) + (tg_len(tail) + 1 if tail else 0)
    log = ""
    if message.log_lines:
        keep_tail = message.kind not in _HEAD_FIRST
        log = pre_block(message.log_lines, limit - fixed - 1, keep_tail=keep_tail)
    parts = (head, tail, log) if message.kind is MessageKind.TERMINAL else (head, log, tail)
    return "\n".join(part for part in parts if part)


def render_runs(
    views: Sequence[RunView], now: datetime, limit: int = TELEGRAM_LIMIT, tz: tzinfo = UTC
) -> str:
    """The /runs answer: kept instances first, then live runs, cost so far and projected."""
    head = f"<b>{esc(runs_title(views))}</b>"
    if not views:
        return head
    body = pre_block(runs_text_lines(views, now, tz), limit - tg_len(head) - 1, keep_tail=False)
    return f"{head}\n{body}"


def render_status(
    view: RunView, now: datetime, limit: int = TELEGRAM_LIMIT, tz: tzinfo = UTC
) -> str:
    """The /status answer (core.answers.status_answer, the CLI's too) in Telegram's HTML."""
    answer = status_answer(view, now, tz)
    parts = [f"<code>{esc(answer.status_line)}</code>", f"<b>{esc(answer.name)}</b>"]
    parts += [esc(line) for line in (answer.facts, *answer.details)]
    head = "\n".join(parts)
    log = pre_block(answer.tail, limit - tg_len(head) - 1) if answer.tail else ""
    return "\n".join(p for p in (head, log) if p)
