"""A check's read of its run (Store.run_for_check) on the loop's own read-only connection:
it sees what other connections committed, it never holds a snapshot open (a WAL checkpoint
by another connection completes), and a reader that fails reads through the database's
thread instead."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.models import CheckCommit, OpenAlert, RunRecord
from core.store import Store

NOW = datetime(2026, 11, 30, 3, 0, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "watch.db")
    yield opened
    await opened.close()


def a_run() -> RunRecord:
    return RunRecord(name="llama-ft", run_dir="/workspace/runs/llama-ft", launched_at=NOW)


async def test_a_read_sees_what_another_connection_committed(store: Store) -> None:
    await store.upsert_run(a_run())
    alert = OpenAlert("llama-ft", "stall", NOW, NOW, "no output for 40 min")
    await store.commit_check(CheckCommit(a_run(), NOW, "s", "alert", alerts_opened=(alert,)))
    record, alerts = await store.run_for_check("llama-ft")
    assert record is not None and record.deadline_at is None and set(alerts) == {"stall"}

    later = NOW + timedelta(hours=6)
    other = sqlite3.connect(store.path, isolation_level=None)  # a `sleepwatch extend` elsewhere
    try:
        other.execute(
            "UPDATE runs SET deadline_at = ? WHERE name = ?", (later.isoformat(), "llama-ft")
        )
    finally:
        other.close()
    record, _ = await store.run_for_check("llama-ft")
    assert record is not None and record.deadline_at == later
    assert await store.run_for_check("nobody") == (None, {})


async def test_reads_leave_no_snapshot_open_so_a_checkpoint_completes(store: Store) -> None:
    await store.upsert_run(a_run())
    for _ in range(20):
        await store.run_for_check("llama-ft")
        await store.run_for_check("nobody")
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        other.close()
    assert busy == 0  # a reader holding a snapshot would make the checkpoint busy


async def test_a_reader_that_fails_reads_through_the_database_thread(store: Store) -> None:
    await store.upsert_run(a_run())
    store._reader.close()  # type: ignore[union-attr]  # any sqlite3 error on it: closed here
    record, alerts = await store.run_for_check("llama-ft")
    assert record is not None and record.name == "llama-ft" and alerts == {}
