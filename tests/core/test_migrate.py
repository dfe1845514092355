"""Migrations: applied in order once, tracked by user_version, a failed file leaves nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from core.errors import StoreError
from core.migrate import MIGRATIONS_DIR, apply_migrations, load_migrations, split_statements


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await aiosqlite.connect(tmp_path / "m.db", isolation_level=None)
    yield connection
    await connection.close()


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(sql, encoding="utf-8")


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_the_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    migrations = load_migrations(MIGRATIONS_DIR)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].filename == "001_initial.sql"


async def test_migrations_apply_once_and_track_user_version(
    conn: aiosqlite.Connection, tmp_path: Path
) -> None:
    latest = len(load_migrations())
    assert await apply_migrations(conn, db_path="m.db") == list(range(1, latest + 1))
    assert await apply_migrations(conn, db_path="m.db") == []
    assert version(tmp_path / "m.db") == latest
    assert {"runs", "checks", "alerts", "outbox", "actions", "audit", "meta"} <= tables(
        tmp_path / "m.db"
    )


async def test_a_failed_migration_leaves_the_last_good_version_and_none_of_its_statements(
    conn: aiosqlite.Connection, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    write(folder, "001_first.sql", "CREATE TABLE a (x INTEGER);\n")
    write(
        folder, "002_second.sql", "CREATE TABLE b (x INTEGER);\nINSERT INTO nowhere VALUES (1);\n"
    )

    with pytest.raises(StoreError, match="002_second.sql"):
        await apply_migrations(conn, db_path="m.db", directory=folder)

    assert version(tmp_path / "m.db") == 1
    assert tables(tmp_path / "m.db") == {"a"}
    assert not conn.in_transaction

    write(folder, "002_second.sql", "CREATE TABLE b (x INTEGER);\n")
    assert await apply_migrations(conn, db_path="m.db", directory=folder) == [2]
    assert tables(tmp_path / "m.db") == {"a", "b"}


async def test_a_database_newer_than_the_migrations_is_refused(
    conn: aiosqlite.Connection,
) -> None:
    await conn.execute("PRAGMA user_version = 999")
    with pytest.raises(StoreError, match="schema version 999, newer"):
        await apply_migrations(conn, db_path="m.db")


def test_a_badly_named_or_missing_migration_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    write(folder, "001_first.sql", "CREATE TABLE a (x INTEGER);\n")
    write(folder, "003_third.sql", "CREATE TABLE c (x INTEGER);\n")
    with pytest.raises(StoreError, match="expected version 002"):
        load_migrations(folder)

    write(folder, "2-second.sql", "CREATE TABLE b (x INTEGER);\n")
    with pytest.raises(StoreError, match="001_name.sql"):
        load_migrations(folder)

    with pytest.raises(StoreError, match="not found"):
        load_migrations(tmp_path / "absent")


def test_statements_split_at_complete_statements_keeping_triggers_whole() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x INTEGER);
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        UPDATE a SET x = 1;
        UPDATE a SET x = 2;
    END;
    -- trailing comment
    """
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")

    with pytest.raises(StoreError, match="incomplete"):
        split_statements("CREATE TABLE a (x INTEGER)")
