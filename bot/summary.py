"""The morning summary: the /runs text on its own, once per local day, skipped when idle.

Queued by the cron job that bot/app.py adds to the scheduler; sent by the outbox like any
message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from core.answers import runs_text_lines, runs_title
from core.kept import is_kept
from core.models import MessageKind, OutboundMessage, RunRecord
from core.ports import Control
from core.topics import Topic

QUIET_AFTER = timedelta(hours=24)


class SummaryStore(Protocol):
    async def list_runs(self) -> list[RunRecord]: ...

    async def enqueue(
        self, message: OutboundMessage, *, dedupe_key: str, at: datetime
    ) -> int | None: ...


def last_active_at(run: RunRecord) -> datetime:
    return run.ended_at or run.last_check_at or run.launched_at


def summary_due(runs: Sequence[RunRecord], now: datetime) -> bool:
    """True when some run is live, keeps an instance billing, or was active in the last 24 h."""
    return any(r.live or is_kept(r) or now - last_active_at(r) <= QUIET_AFTER for r in runs)


def summary_key(now: datetime, tz: tzinfo) -> str:
    return f"summary:{now.astimezone(tz).date().isoformat()}"


async def enqueue_morning_summary(
    control: Control, store: SummaryStore, now: datetime, *, tz: tzinfo = UTC
) -> int | None:
    """Queue the summary; returns the outbox id, or None when skipped or already queued today."""
    if not summary_due(await store.list_runs(), now):
        return None
    views = await control.list_runs(now)
    message = OutboundMessage(
        kind=MessageKind.SUMMARY,
        title=f"Morning summary. {runs_title(views)}",
        topic=Topic.MORNING_SUMMARY,
        log_lines=tuple(runs_text_lines(views, now, tz)),
    )
    return await store.enqueue(message, dedupe_key=summary_key(now, tz), at=now)
