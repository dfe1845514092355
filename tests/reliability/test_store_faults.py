"""The database locked by another process, under a running service: a scheduled check that
hits StoreError says so in plain words, writes nothing half-way, the service keeps running and
the next check after the fault clears goes through. (A full disk takes the same StoreError
path; the store itself is filled in tests/core/test_store.py.)"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from pathlib import Path

import pytest

from core.service import Service
from core.store import Store
from tests.reliability.helpers import (
    RUN,
    LocalHarness,
    local_config,
    trainer_command,
    wait_for,
    write_trainer,
)

LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("COMMIT")
"""


def long_run(tmp_path: Path) -> LocalHarness:
    """A run that trains for a minute and never crashes."""
    run_dir = tmp_path / "runs" / RUN
    run_dir.mkdir(parents=True)
    (run_dir / "crashed-once").touch()
    command = trainer_command(write_trainer(tmp_path), run_dir, steps=60, step_s=1.0)
    return LocalHarness(local_config(tmp_path, command))


def checks_in(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM checks").fetchone()[0])


def assert_consistent(db: Path) -> None:
    """Nothing half-written: the database is sound and the run row matches its last check."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (line,) = conn.execute(
            "SELECT last_status_line FROM runs WHERE name = ?", (RUN,)
        ).fetchone()
        (last,) = conn.execute(
            "SELECT status_line FROM checks WHERE run = ? ORDER BY id DESC LIMIT 1", (RUN,)
        ).fetchone()
        assert line == last
    finally:
        conn.close()


def failed_checks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        str(r.exc_info[1])
        for r in caplog.records
        if r.name == "core.scheduling" and r.exc_info and r.exc_info[1] is not None
    ]


async def recovers(service: Service, db: Path) -> None:
    before = checks_in(db)
    service.scheduler.wake(RUN)  # stands in for the 60 s retry the failed check re-armed
    await wait_for(lambda: checks_in(db) > before, 15, what="a check after the fault cleared")


async def test_a_database_locked_by_another_process_fails_the_check_clearly_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    h = long_run(tmp_path)
    store = await Store.open(h.db, busy_timeout_ms=300)
    await h.launch(store)
    service = h.service(store)
    holder = None
    try:
        await service.start()
        await wait_for(lambda: checks_in(h.db) >= 2, 20, what="two checks")
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LOCK_HOLDER,
            str(h.db),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert holder.stdout is not None and holder.stdin is not None
        assert await holder.stdout.readline() == b"locked\n"
        await wait_for(lambda: failed_checks(caplog) != [], 20, what="a failed check")
        error = failed_checks(caplog)[0]
        assert "database is locked by another process" in error
        assert "is another sleepwatch using this file?" in error
        assert service.scheduler.next_run_at(RUN) is not None
        assert (await store.get_run(RUN)) is not None  # reads still work (WAL)
        holder.stdin.close()
        assert await holder.wait() == 0
        holder = None
        await recovers(service, h.db)
        assert_consistent(h.db)
    finally:
        if holder is not None:
            holder.kill()
            await holder.wait()
        await service.stop()
        await store.close()
