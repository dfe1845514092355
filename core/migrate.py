"""Schema migrations for the SQLite store, and the one place sqlite3 errors become StoreError.

Migrations are `migrations/NNN_name.sql`, applied in version order at open. Each file runs in
its own transaction together with `PRAGMA user_version = NNN`, so a file that fails leaves
none of its statements behind and the version at the last good file.

Called by core.store_db each time the store opens.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from core.errors import StoreError, StoreFull

# The SQL files live in the top-level `migrations` package (package data), so both the editable
# install that `make` sets up and a built wheel (the Docker image) find them beside core/.
MIGRATIONS_DIR = Path(str(importlib.resources.files("migrations")))

_FILE_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

# SQLite primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    filename: str
    statements: tuple[str, ...]


def store_error(exc: sqlite3.Error, db_path: Path | str, doing: str) -> StoreError:
    """Describe a sqlite3 error as a StoreError a human can act on."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary in (_BUSY, _LOCKED) or "locked" in text:
        return StoreError(
            f"database is locked by another process ({db_path}) while {doing}; "
            "is another sleepwatch using this file?"
        )
    if primary == _FULL or "is full" in text:
        return StoreFull(f"disk full writing {db_path} while {doing} ({text})")
    if primary in (_CORRUPT, _NOTADB):
        error = StoreError(f"database file is corrupt ({db_path}): {text}")
        error.permanent = True
        return error
    if primary in (_IOERR, _CANTOPEN, _READONLY):
        return StoreError(f"cannot read or write {db_path} while {doing}: {text}")
    return StoreError(f"database error while {doing} ({db_path}): {text}")


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a script into statements (one per execute), at line ends where SQLite says a
    statement is complete; a trigger's inner semicolons therefore do not split it."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if _strip_comments(pending):
                statements.append(pending.strip())
            pending = ""
    if _strip_comments(pending):
        raise StoreError(f"incomplete SQL statement at the end: {pending.strip()[:80]!r}")
    return tuple(statements)


def _strip_comments(sql: str) -> str:
    lines = (line.split("--", 1)[0] for line in sql.splitlines())
    return "".join(lines).replace(";", "").strip()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every NNN_name.sql in `directory`, in order. Versions must run 1, 2, 3 … without gaps,
    and a .sql file with any other name is an error rather than silently skipped."""
    if not directory.is_dir():
        raise StoreError(f"migrations folder not found: {directory}")
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise StoreError(f"migration file name must look like 001_name.sql: {path}")
        sql = path.read_text(encoding="utf-8")
        migrations.append(Migration(int(match.group(1)), path.name, split_statements(sql)))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise StoreError(f"migration {migration.filename}: expected version {expected:03d}")
    return migrations


async def user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def apply_migrations(
    conn: aiosqlite.Connection, *, db_path: Path | str, directory: Path = MIGRATIONS_DIR
) -> list[int]:
    """Bring the database up to the newest migration; returns the versions applied (empty when
    it was already current). The connection must be in autocommit mode (isolation_level=None).
    Raises StoreError when a file fails, or the database is newer than the files known here."""
    migrations = load_migrations(directory)
    latest = migrations[-1].version if migrations else 0
    try:
        current = await user_version(conn)
    except sqlite3.Error as exc:
        raise store_error(exc, db_path, "reading the schema version") from exc
    if current > latest:
        raise StoreError(
            f"{db_path} has schema version {current}, newer than this sleepwatch knows "
            f"({latest}); upgrade sleepwatch to open it"
        )
    applied: list[int] = []
    for migration in migrations[current:]:
        if await _apply_one(conn, migration, db_path):
            applied.append(migration.version)
    return applied


async def _apply_one(conn: aiosqlite.Connection, migration: Migration, db_path: Path | str) -> bool:
    try:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the write lock.
            if await user_version(conn) >= migration.version:
                await conn.execute("ROLLBACK")
                return False
            for statement in migration.statements:
                await conn.execute(statement)
            # PRAGMA takes no parameters; the version is an int we parsed from the file name.
            await conn.execute(f"PRAGMA user_version = {migration.version:d}")
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise store_error(exc, db_path, f"applying migration {migration.filename}") from exc
    return True
