"""The store's outbox (messages waiting to be sent, with their dedupe keys and retries) and
its one-time actions (claimed at most once across restarts: a teardown, a kill): the base
class of core.store.Store, which adds the runs, checks, alerts, audit and meta.

Drained by core.outbox.OutboxSender; filled by the watcher's check commits (Store.commit_check
uses insert_message in its transaction) and by enqueue; actions are claimed by core.exits.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from core.models import MessageKind, OutboundMessage, OutboxItem
from core.store_db import Database
from core.store_rows import INSERT_MESSAGE as _INSERT_MESSAGE
from core.store_rows import TEXT_MAX
from core.store_rows import clean_text as _text
from core.store_rows import dt as _dt
from core.store_rows import message_values as _message_values
from core.store_rows import ts as _ts


class OutboxTables(Database):
    """The outbox and actions tables (see the module docstring)."""

    # -- outbox -------------------------------------------------------------------------------

    async def enqueue(
        self, message: OutboundMessage, *, dedupe_key: str | None, at: datetime
    ) -> int | None:
        """Store a message to send; None (and nothing stored) when `dedupe_key` is known.
        A terminal message is never ordered before its own run's earlier messages (stamped
        with the end, it could be: one check can see a retry and the end after it)."""
        async with self._using("queueing a message") as conn:
            if message.kind is MessageKind.TERMINAL and message.run is not None:
                at = max(at, await _latest_of_run(conn, message.run) or at)
            return await insert_message(conn, dedupe_key, _message_values(message, at))

    async def pending(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Unsent messages due at `now` (next_try_at <= now), oldest first: by the time they
        stand for (`at` of enqueue: a terminal message's is when its run ended), then by id."""
        sql = (
            "SELECT id, message, created_at, attempts FROM outbox "
            "WHERE sent_at IS NULL AND next_try_at <= ? ORDER BY created_at, id LIMIT ?"
        )
        rows = await self._fetch("reading the outbox", sql, (_ts(now), limit))
        return [
            OutboxItem(row[0], OutboundMessage.from_json(json.loads(row[1])), _dt(row[2]), row[3])
            for row in rows
        ]

    async def mark_sent(self, item_id: int, at: datetime) -> bool:
        """True only for the one call that marked the item sent (a conditional UPDATE)."""
        sql = "UPDATE outbox SET sent_at = ? WHERE id = ? AND sent_at IS NULL"
        return await self._write("marking a message sent", sql, (_ts(at), item_id)) == 1

    async def defer(self, item_id: int, until: datetime, error: str) -> None:
        sql = (
            "UPDATE outbox SET next_try_at = ?, attempts = attempts + 1, last_error = ? "
            "WHERE id = ? AND sent_at IS NULL"
        )
        await self._write("deferring a message", sql, (_ts(until), _text(error, TEXT_MAX), item_id))

    async def outbox_counts(self) -> tuple[int, int]:
        """(sent, unsent)."""
        sql = "SELECT count(sent_at), count(*) - count(sent_at) FROM outbox"
        rows = await self._fetch("counting the outbox", sql, ())
        return int(rows[0][0]), int(rows[0][1])

    # -- idempotent actions -------------------------------------------------------------------

    async def claim_action(self, run: str, key: str, at: datetime) -> bool:
        """True only for the first claim of (run, key), across restarts, until released."""
        sql = (
            "INSERT INTO actions (run, key, claimed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (run, key) DO NOTHING"
        )
        return await self._write(f"claiming {key} for {run}", sql, (run, key, _ts(at))) == 1

    async def finish_action(self, run: str, key: str, result: str, at: datetime) -> None:
        sql = (
            "INSERT INTO actions (run, key, claimed_at, result, finished_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run, key) DO UPDATE SET "
            "result = excluded.result, finished_at = excluded.finished_at"
        )
        stamp = _ts(at)
        await self._write(f"finishing {key} for {run}", sql, (run, key, stamp, result, stamp))

    async def action_result(self, run: str, key: str) -> str | None:
        sql = "SELECT result FROM actions WHERE run = ? AND key = ?"
        rows = await self._fetch("reading an action", sql, (run, key))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    async def release_action(self, run: str, key: str) -> None:
        sql = "DELETE FROM actions WHERE run = ? AND key = ?"
        await self._write(f"releasing {key} for {run}", sql, (run, key))


async def insert_message(
    conn: aiosqlite.Connection, dedupe_key: str | None, values: tuple[Any, ...]
) -> int | None:
    cursor = await conn.execute(_INSERT_MESSAGE, (dedupe_key, *values))
    return cursor.lastrowid if cursor.rowcount == 1 else None


async def _latest_of_run(conn: aiosqlite.Connection, run: str) -> datetime | None:
    cursor = await conn.execute("SELECT max(created_at) FROM outbox WHERE run = ?", (run,))
    row = await cursor.fetchone()
    return _dt(row[0]) if row and row[0] else None
