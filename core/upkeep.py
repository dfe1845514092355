"""What `serve` does for itself at each heartbeat besides writing it (core/health.py): prune
the store once an hour, and queue the reminders due for instances left billing after their
run ended (core/kept.py decides which). Called by core.service.Service.beat_once; a locked or
full store is logged and tried again at the next beat, never raised into the loop.
"""

from __future__ import annotations

import logging
from datetime import datetime

from core.collect_report import kept_uncollected, meta_key
from core.config import Config
from core.errors import SleepwatchError
from core.kept import is_kept, reminder_for
from core.run_settings import settings_for
from core.store import Store

log = logging.getLogger(__name__)


async def prune_if_due(
    store: Store, now: datetime, pruned_at: datetime | None, every_s: float
) -> datetime | None:
    """Prune when `every_s` has passed since `pruned_at` (or never pruned); returns when the
    store was last pruned."""
    if pruned_at is not None and (now - pruned_at).total_seconds() < every_s:
        return pruned_at
    try:
        await store.prune(now)
    except SleepwatchError as exc:  # a full or locked store: the next beat retries
        log.warning("pruning the store failed: %s", exc)
        return pruned_at
    return now


async def queue_kept_reminders(store: Store, config: Config, now: datetime) -> int:
    """Queue the reminders now due for instances left billing after their run ended; returns
    how many were queued."""
    queued = 0
    try:
        for record in await store.kept_candidates():  # not all 5,000 runs every 30 s
            if not is_kept(record):
                continue
            every_s = settings_for(config, record.name).kept_reminder_s
            uncollected = kept_uncollected(await store.get_meta(meta_key(record.name)))
            reminder = reminder_for(record, now, every_s, uncollected=uncollected)
            if reminder is not None:
                await store.enqueue(reminder.message, dedupe_key=reminder.dedupe_key, at=now)
                queued += 1
    except SleepwatchError as exc:  # a locked or full store: the next beat tries again
        log.warning("kept-instance reminders: %s", exc)
    return queued
