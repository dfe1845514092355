"""The store of record: SQLite through aiosqlite (WAL, foreign keys, busy timeout).

Every sqlite3 error is turned into StoreError at this seam (see core.migrate.store_error).
One connection per Store; an asyncio.Lock serialises its use, because a transaction spans
several awaits and nothing else may run statements on the connection in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from core.errors import StaleRun, StoreError, StoreFull
from core.migrate import apply_migrations, store_error
from core.models import CheckCommit, OpenAlert, OutboundMessage, OutboxItem, RunRecord

TEXT_MAX = 500  # audit text and delivery errors are cut to this many characters
# Retention (see Store.prune): unsolicited chat updates must not grow the file without bound.
AUDIT_KEEP_S = 90 * 86400.0
AUDIT_MAX_ROWS = 10_000
AUDIT_REFUSED_MAX_ROWS = 1_000
OUTBOX_SENT_KEEP_S = 30 * 86400.0

_RUN_COLUMNS = tuple(f.name for f in fields(RunRecord))
_RUN_TIMES = frozenset(
    {"launched_at", "deadline_at", "muted_until", "last_check_at", "next_check_at"}
    | {"torn_down_at", "ended_at"}
)
# Only column names taken from RunRecord are formatted in; every value is a parameter.
# ON CONFLICT ... DO UPDATE rather than INSERT OR REPLACE: a replace deletes the row first,
# and the foreign keys would cascade that delete to the run's checks and alerts.
_UPSERT_RUN = (
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _RUN_COLUMNS)}) ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RUN_COLUMNS if c != "name")
)
# Columns a human changes (/extend, /mute) while checks run, and the settings only launch
# writes: the watcher's own writes of a run row (save_run, commit_check) leave them as stored,
# so a check that read the row before the command cannot undo it.
HUMAN_COLUMNS = ("deadline_at", "muted_until", "settings")
# A watcher's write made from a row it read before another process changed it is dropped when
# it would undo that change: a run relaunched since (another launched_at), or a run that ended
# (a `sleepwatch teardown` from another shell) written back as not ended.
_SAVE_RUN = (
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _RUN_COLUMNS)}) ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}" for c in _RUN_COLUMNS if c != "name" and c not in HUMAN_COLUMNS
    )
    + " WHERE runs.launched_at = excluded.launched_at"
    " AND (runs.ended_at IS NULL OR excluded.ended_at IS NOT NULL)"
)
_INSERT_MESSAGE = (
    "INSERT INTO outbox (dedupe_key, kind, run, message, created_at, next_try_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING"
)


class Store:
    """Runs, checks, alerts, outbox, actions, command audit and meta, in one SQLite file."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, busy_timeout_ms: int) -> None:
        self._conn = conn
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = asyncio.Lock()
        self._closed = False
        self._identity = _file_identity(path)
        # The last error of any statement, until a later write goes through (see _using).
        self.write_error: StoreError | None = None

    @property
    def path(self) -> Path:
        return self._path

    def file_problem(self) -> str | None:
        """Why the path no longer names the file this Store has open (deleted, replaced), or
        None. Writes to a deleted file would succeed and vanish with the last handle."""
        try:
            identity = _file_identity(self._path)
        except FileNotFoundError:
            return f"the store {self._path} was deleted under this process"
        except OSError as exc:
            return f"the store {self._path} cannot be looked at: {exc.strerror}"
        if identity != self._identity:
            return f"the store {self._path} was replaced by another file under this process"
        return None

    @classmethod
    async def open(
        cls, path: Path, *, busy_timeout_ms: int = 5000, max_page_count: int | None = None
    ) -> Store:
        """Open (creating it mode 0600, its folder 0700) and migrate the database.
        `max_page_count` caps the file's size in pages; tests use it to fill the "disk"."""
        path = Path(path)
        _create_private_file(path)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(exc, path, "opening the database") from exc
        try:
            await _configure(conn, path, busy_timeout_ms, max_page_count)
            await apply_migrations(conn, db_path=path)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path, busy_timeout_ms)

    async def close(self) -> None:
        async with self._lock:
            if not self._closed:
                self._closed = True
                await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- runs -------------------------------------------------------------------------------

    async def upsert_run(self, run: RunRecord) -> None:
        values = _run_values(run)
        async with self._using(f"saving run {run.name}") as conn:
            await conn.execute(_UPSERT_RUN, values)

    async def save_run(self, run: RunRecord) -> bool:
        """Write the watcher's view of a run, keeping the human-owned columns as stored.
        False (nothing written) when the row changed under it (see _SAVE_RUN)."""
        async with self._using(f"saving run {run.name}") as conn:
            cursor = await conn.execute(_SAVE_RUN, _run_values(run))
            return cursor.rowcount == 1

    async def set_human_fields(
        self,
        name: str,
        *,
        deadline_at: datetime | None | object = ...,
        muted_until: datetime | None | object = ...,
    ) -> None:
        """Change only /extend's and /mute's columns (`...` leaves one as it is)."""
        changes = {
            column: value
            for column, value in (("deadline_at", deadline_at), ("muted_until", muted_until))
            if value is not ...
        }
        if not changes:
            return
        sets = ", ".join(f"{column} = ?" for column in changes)  # names from the tuple above
        values = [_ts(v) if isinstance(v, datetime) else None for v in changes.values()]
        async with self._using(f"updating run {name}") as conn:
            await conn.execute(f"UPDATE runs SET {sets} WHERE name = ?", (*values, name))  # noqa: S608

    async def set_run_settings(self, name: str, settings: str) -> None:
        """Replace the settings stored with a run (a change applied from the config file)."""
        sql = "UPDATE runs SET settings = ? WHERE name = ?"
        await self._write(f"updating the settings of {name}", sql, (_text(settings), name))

    async def reset_run(self, name: str, at: datetime) -> None:
        """Forget what a previous run under this name claimed, so a relaunch starts clean: its
        one-time actions (teardown, kills), its open alerts, its pending terminal message, and
        the dedupe keys of its messages (sent ones stay, under a retired key)."""
        async with self._transaction(f"resetting run {name}") as conn:
            await conn.execute("DELETE FROM actions WHERE run = ?", (name,))
            await conn.execute(
                "UPDATE alerts SET resolved_at = ? WHERE run = ? AND resolved_at IS NULL",
                (_ts(at), name),
            )
            await conn.execute("DELETE FROM meta WHERE key = ?", (f"terminal:{name}",))
            await conn.execute(
                "UPDATE outbox SET dedupe_key = dedupe_key || '#retired-' || id "
                "WHERE run = ? AND dedupe_key IS NOT NULL",
                (name,),
            )

    async def get_run(self, name: str) -> RunRecord | None:
        rows = await self._fetch("reading a run", "SELECT * FROM runs WHERE name = ?", (name,))
        return _run_from_row(rows[0]) if rows else None

    async def list_runs(self) -> list[RunRecord]:
        sql = "SELECT * FROM runs ORDER BY live DESC, launched_at DESC, name"
        return [_run_from_row(row) for row in await self._fetch("listing runs", sql, ())]

    async def run_names(self) -> list[str]:
        rows = await self._fetch("listing runs", "SELECT name FROM runs ORDER BY name", ())
        return [str(row[0]) for row in rows]

    # -- checks and alerts --------------------------------------------------------------------

    async def commit_check(self, commit: CheckCommit) -> list[int]:
        """Apply everything one check decided in ONE transaction (see CheckCommit): all of it
        is written, or none. Returns the ids of the messages actually enqueued. Raises StaleRun
        (nothing written) when the run was ended or relaunched by another process meanwhile."""
        name, at = commit.run.name, _ts(commit.at)
        run_values = _run_values(commit.run)
        check = (name, at, _text(commit.status_line), _text(commit.health), _json(commit.reasons))
        opened = [_alert_values(alert) for alert in commit.alerts_opened]
        messages = [(key, _message_values(msg, commit.at)) for key, msg in commit.messages]
        ids: list[int] = []
        async with self._transaction(f"saving a check of {name}") as conn:
            cursor = await conn.execute(_SAVE_RUN, run_values)
            if cursor.rowcount != 1:  # rolled back: this check's view is out of date
                raise StaleRun(name)
            await conn.execute(
                "INSERT INTO checks (run, at, status_line, health, reasons) VALUES (?, ?, ?, ?, ?)",
                check,
            )
            for condition in commit.alerts_resolved:
                await conn.execute(
                    "UPDATE alerts SET resolved_at = ? "
                    "WHERE run = ? AND condition = ? AND resolved_at IS NULL",
                    (at, name, condition),
                )
            await conn.executemany(
                "INSERT INTO alerts (run, condition, opened_at, last_sent_at, message) "
                "VALUES (?, ?, ?, ?, ?)",
                opened,
            )
            for condition in commit.alerts_resent:
                await conn.execute(
                    "UPDATE alerts SET last_sent_at = ? "
                    "WHERE run = ? AND condition = ? AND resolved_at IS NULL",
                    (at, name, condition),
                )
            for key, values in messages:
                if (item_id := await _insert_message(conn, key, values)) is not None:
                    ids.append(item_id)
        return ids

    async def recent_checks(self, run: str, limit: int = 20) -> list[tuple[datetime, str, str]]:
        """(at, status_line, health) of the run's latest checks, newest first."""
        sql = (
            "SELECT at, status_line, health FROM checks WHERE run = ? "
            "ORDER BY at DESC, id DESC LIMIT ?"
        )
        rows = await self._fetch("reading checks", sql, (run, limit))
        return [(_dt(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def open_alerts(self, run: str) -> dict[str, OpenAlert]:
        sql = (
            "SELECT run, condition, opened_at, last_sent_at, message FROM alerts "
            "WHERE run = ? AND resolved_at IS NULL ORDER BY id"
        )
        rows = await self._fetch("reading alerts", sql, (run,))
        alerts = [
            OpenAlert(row[0], row[1], _dt(row[2]), _dt_or_none(row[3]), row[4]) for row in rows
        ]
        return {alert.condition: alert for alert in alerts}

    # -- outbox -------------------------------------------------------------------------------

    async def enqueue(
        self, message: OutboundMessage, *, dedupe_key: str | None, at: datetime
    ) -> int | None:
        """Store a message to send; None (and nothing stored) when `dedupe_key` is known."""
        values = _message_values(message, at)
        async with self._using("queueing a message") as conn:
            return await _insert_message(conn, dedupe_key, values)

    async def pending(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Unsent messages due at `now` (next_try_at <= now), oldest id first."""
        sql = (
            "SELECT id, message, created_at, attempts FROM outbox "
            "WHERE sent_at IS NULL AND next_try_at <= ? ORDER BY id LIMIT ?"
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

    # -- command audit and meta ---------------------------------------------------------------

    async def audit(
        self, *, at: datetime, chat_id: int | None, user_id: int | None, command: str, verdict: str
    ) -> None:
        sql = "INSERT INTO audit (at, chat_id, user_id, command, verdict) VALUES (?, ?, ?, ?, ?)"
        values = (_ts(at), chat_id, user_id, _text(command, TEXT_MAX), _text(verdict, TEXT_MAX))
        await self._write("recording a command", sql, values)

    async def audit_rows(self, limit: int = 100) -> list[dict[str, object]]:
        """Newest first: id, at, chat_id, user_id, command, verdict."""
        sql = (
            "SELECT id, at, chat_id, user_id, command, verdict FROM audit ORDER BY id DESC LIMIT ?"
        )
        rows = await self._fetch("reading the audit", sql, (limit,))
        return [{**dict(row), "at": _dt(row["at"])} for row in rows]

    async def data_version(self) -> int:
        """A number that changes whenever ANOTHER connection (a `sleepwatch launch`, `teardown`
        or `extend` from another shell) commits to the file: SQLite's PRAGMA data_version, a
        cheap read that is how a running serve hears of them at once."""
        rows = await self._fetch("reading the data version", "PRAGMA data_version", ())
        return int(rows[0][0])

    async def prune(self, now: datetime) -> int:
        """Drop old rows: audit rows older than AUDIT_KEEP_S or beyond the newest
        AUDIT_MAX_ROWS (refused ones, from strangers, beyond the newest AUDIT_REFUSED_MAX_ROWS),
        and sent outbox rows older than OUTBOX_SENT_KEEP_S whose run is over (a live run's
        dedupe keys must stay). Unsent messages are never dropped. Returns the rows deleted."""
        audit_before = _ts(now - timedelta(seconds=AUDIT_KEEP_S))
        outbox_before = _ts(now - timedelta(seconds=OUTBOX_SENT_KEEP_S))
        statements: tuple[tuple[str, tuple[Any, ...]], ...] = (
            ("DELETE FROM audit WHERE at < ?", (audit_before,)),
            (
                "DELETE FROM audit WHERE verdict = 'refused' AND id <= (SELECT id FROM audit "
                "WHERE verdict = 'refused' ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (AUDIT_REFUSED_MAX_ROWS,),
            ),
            (
                "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC "
                "LIMIT 1 OFFSET ?)",
                (AUDIT_MAX_ROWS,),
            ),
            (
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? AND (run IS NULL "
                "OR run NOT IN (SELECT name FROM runs WHERE live = 1))",
                (outbox_before,),
            ),
        )
        deleted = 0
        async with self._transaction("pruning old audit and outbox rows") as conn:
            for sql, params in statements:
                deleted += (await conn.execute(sql, params)).rowcount
        return deleted

    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetch("reading meta", "SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        sql = (
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        await self._write(f"saving {key}", sql, (key, _text(value)))

    # -- plumbing -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _using(self, doing: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            if self._closed:
                raise StoreError(f"store {self._path} is closed (while {doing})")
            changes_before = self._conn.total_changes
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self.write_error = store_error(exc, self._path, doing)
                raise self.write_error from exc
            if self._conn.total_changes > changes_before:
                self.write_error = None  # a write went through: the store is writable again

    @contextlib.asynccontextmanager
    async def _transaction(self, doing: str) -> AsyncIterator[aiosqlite.Connection]:
        # IMMEDIATE takes the write lock up front (waiting busy_timeout for it): a deferred
        # transaction that upgrades from read to write can fail at once in WAL mode.
        async with self._using(doing) as conn:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    with contextlib.suppress(sqlite3.Error):
                        await conn.execute("ROLLBACK")
                raise

    async def _fetch(self, doing: str, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        async with self._using(doing) as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def _write(self, doing: str, sql: str, params: tuple[Any, ...]) -> int:
        """Run one statement in autocommit mode; returns the number of rows it changed."""
        async with self._using(doing) as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount


async def _configure(
    conn: aiosqlite.Connection, path: Path, busy_timeout_ms: int, max_page_count: int | None
) -> None:
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms):d}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA journal_mode = WAL")
        # FULL (not WAL's usual NORMAL): a message marked sent must stay marked after a
        # power cut, or it would be sent twice.
        await conn.execute("PRAGMA synchronous = FULL")
        if max_page_count is not None:
            await conn.execute(f"PRAGMA max_page_count = {int(max_page_count):d}")
    except sqlite3.Error as exc:
        raise store_error(exc, path, "opening the database") from exc


def _file_identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite gives its -wal and -shm files
    the main file's mode), and tighten a file someone left readable by others."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreFull(f"disk full creating {path}") from exc
        raise StoreError(f"cannot create database file {path}: {exc.strerror}") from exc


async def _insert_message(
    conn: aiosqlite.Connection, dedupe_key: str | None, values: tuple[Any, ...]
) -> int | None:
    cursor = await conn.execute(_INSERT_MESSAGE, (dedupe_key, *values))
    return cursor.lastrowid if cursor.rowcount == 1 else None


def _message_values(message: OutboundMessage, at: datetime) -> tuple[Any, ...]:
    stamp = _ts(at)
    return (message.kind.value, message.run, _json(message.to_json()), stamp, stamp)


def _alert_values(alert: OpenAlert) -> tuple[Any, ...]:
    sent = None if alert.last_sent_at is None else _ts(alert.last_sent_at)
    return (alert.run, alert.condition, _ts(alert.opened_at), sent, _text(alert.message))


def _run_values(run: RunRecord) -> tuple[Any, ...]:
    values: list[Any] = []
    for column in _RUN_COLUMNS:
        value = getattr(run, column)
        if column in _RUN_TIMES:
            value = None if value is None else _ts(value)
        elif column == "memory":
            value = _json(value)
        elif column == "live":
            value = int(value)
        elif isinstance(value, str):
            value = _text(value)
        values.append(value)
    return tuple(values)


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    values: dict[str, Any] = {}
    for column in _RUN_COLUMNS:
        value = row[column]
        if column in _RUN_TIMES:
            value = _dt_or_none(value)
        elif column == "memory":
            value = json.loads(value)
        elif column == "live":
            value = bool(value)
        values[column] = value
    return RunRecord(**values)


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in SQL comparisons."""
    if moment.utcoffset() is None:
        raise ValueError(f"the store keeps tz-aware UTC datetimes only, got naive {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _dt_or_none(text: str | None) -> datetime | None:
    return None if text is None else _dt(text)


def _json(document: Any) -> str:
    # ensure_ascii escapes lone surrogates too, which SQLite could not store as UTF-8.
    return json.dumps(document, ensure_ascii=True, separators=(",", ":"))


def _text(value: str, limit: int | None = None) -> str:
    """Free text as SQLite can store it: lone surrogates (from bytes that were not UTF-8)
    replaced, cut to `limit` characters if given."""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")
