"""The store's connection: opening the SQLite file (created 0600, WAL, FULL sync, busy
timeout, migrated), one asyncio.Lock around the connection, transactions, and the one place
a sqlite3 error raised by a statement becomes StoreError (through core.migrate.store_error).

Only core.store.Store builds on it (it holds the statements of each table); nothing else
opens the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiosqlite

from core.errors import StoreError, StoreFull
from core.migrate import apply_migrations, store_error

T = TypeVar("T")


class Database:
    """One connection per instance; an asyncio.Lock serialises its use, because a transaction
    spans several awaits and nothing else may run statements on the connection in between."""

    def __init__(
        self, conn: aiosqlite.Connection, path: Path, reader: sqlite3.Connection | None = None
    ) -> None:
        self._conn = conn
        self._reader = reader
        self._path = path
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
    ) -> Self:
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
        return cls(conn, path, _open_reader(path))

    async def close(self) -> None:
        async with self._lock:
            if not self._closed:
                self._closed = True
                if self._reader is not None:
                    self._reader.close()
                await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

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

    async def _in_thread(self, doing: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the database's thread in ONE hop, however many statements it
        runs: each statement awaited on its own costs the loop a thread round trip (a queue
        put, a wake-up, a self-pipe write), and a check ran ~8 of them. aiosqlite's primitive
        for it, Connection._execute (what its own execute and fetchall are built on), is not
        public: this is the one place that uses it. `work` holds the database thread: it runs
        statements and reads rows, nothing that waits on anything else."""
        async with self._using(doing) as conn:
            result: T = await conn._execute(work, conn._conn)  # type: ignore[no-untyped-call]
            return result

    async def _read(self, doing: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` (reads only) at once on the loop's own read-only connection, else on the
        database's thread. At 5,000 runs a check's read was a thread round trip each (a queue
        put, the GIL handed to and fro around every statement, a self-pipe write): about a
        tenth of serve's CPU. A read in WAL mode never waits for a writer, and the snapshot
        ends before this returns (one left open would stop every checkpoint). Any error on
        the reader (busy, closed, odd) reads on the thread instead, with its usual errors."""
        reader = self._reader
        if reader is not None and not self._closed:
            try:
                if reader.in_transaction:
                    reader.execute("ROLLBACK")
                reader.execute("BEGIN")  # one snapshot for all of work's statements
                try:
                    return work(reader)
                finally:
                    reader.execute("COMMIT")
            except sqlite3.Error:
                pass
        return await self._in_thread(doing, work)

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


def _open_reader(path: Path) -> sqlite3.Connection | None:
    """A read-only connection for the loop's own thread (see Database._read); None when it
    cannot be had (reads then go through the database's thread)."""
    try:
        reader = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        reader.row_factory = sqlite3.Row
        reader.execute("PRAGMA query_only = ON")
        reader.execute("PRAGMA busy_timeout = 0")  # never block the loop: fall back instead
    except sqlite3.Error:
        reader.close()
        return None
    return reader


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
