"""The store against real SQLite files: atomic checks, outbox, actions, audit, faults."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.errors import StoreError
from core.migrate import load_migrations
from core.models import (
    CheckCommit,
    MessageKind,
    OpenAlert,
    OutboundMessage,
    RunRecord,
)
from core.store import TEXT_MAX, Store

NOW = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)

# Another PROCESS takes the write lock and keeps it until it reads a line on stdin.
HOLD_WRITE_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "watch.db")
    yield opened
    await opened.close()


def a_run(name: str = "llama-ft", **changes: object) -> RunRecord:
    fields: dict[str, object] = {"name": name, "run_dir": f"/workspace/runs/{name}"}
    fields.setdefault("launched_at", NOW)
    fields.update(changes)
    return RunRecord(**fields)  # type: ignore[arg-type]


def a_message(title: str = "stalled", run: str | None = "llama-ft") -> OutboundMessage:
    return OutboundMessage(kind=MessageKind.ALERT, title=title, run=run, reasons=("why",))


def a_check(run: RunRecord, at: datetime = NOW, **changes: object) -> CheckCommit:
    fields: dict[str, object] = {"status_line": f"{at:%Y-%m-%dT%H:%M:%SZ} running 1/3 - - - - x"}
    fields.update(health="ok")
    fields.update(changes)
    return CheckCommit(run=run, at=at, **fields)  # type: ignore[arg-type]


def sql(path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


# -- opening ------------------------------------------------------------------------------------


async def test_open_creates_the_file_0600_and_its_folder_0700(tmp_path: Path) -> None:
    path = tmp_path / "state" / "watch.db"
    async with await Store.open(path) as store:
        await store.set_meta("k", "v")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for side_file in path.parent.iterdir():  # -wal and -shm take the file's mode
            assert stat.S_IMODE(side_file.stat().st_mode) == 0o600, side_file.name


async def test_open_tightens_a_database_file_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    async with await Store.open(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_reopening_applies_no_migration_again_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    async with await Store.open(path) as store:
        await store.upsert_run(a_run())
    latest = len(load_migrations())
    assert sql(path, "PRAGMA user_version") == [(latest,)]
    assert sql(path, "PRAGMA journal_mode") == [("wal",)]

    async with await Store.open(path) as store:
        assert await store.run_names() == ["llama-ft"]
    assert sql(path, "PRAGMA user_version") == [(latest,)]


async def test_a_file_that_is_not_a_database_is_reported_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    path.write_bytes(b"this is not sqlite " * 400)
    with pytest.raises(StoreError, match="database file is corrupt") as caught:
        await Store.open(path)
    assert caught.value.permanent


async def test_a_closed_store_says_so(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.get_meta("k")
    await store.close()


# -- runs ---------------------------------------------------------------------------------------


async def test_a_run_round_trips_every_field_with_utc_datetimes(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    run = RunRecord(
        name="llama-ft",
        run_dir="/workspace/runs/llama-ft",
        launched_at=datetime(2026, 11, 28, 4, 0, 0, 123456, tzinfo=paris),
        instance_id="123",
        ssh_host="127.0.0.1",
        ssh_port=2222,
        ssh_user="root",
        live=False,
        status="running",
        attempt=2,
        max_attempts=3,
        deadline_at=NOW + timedelta(hours=8),
        muted_until=NOW + timedelta(hours=1),
        log_attempt=2,
        log_offset=4096,
        memory={"stale_checks": 1, "baseline": [1.5, None], "note": "ünïcode"},
        last_status_line="2026-11-28T03:00:00Z running 2/3 10/90 97% 1.0/80.0G oom llama-ft",
        last_check_at=NOW,
        next_check_at=NOW + timedelta(minutes=30),
        interval_s=1800.0,
        dph_total=1.25,
        teardown="pending",
        torn_down_at=NOW,
        ended_at=NOW,
    )
    await store.upsert_run(run)

    loaded = await store.get_run("llama-ft")
    assert loaded == run
    assert loaded is not None and loaded.launched_at.tzinfo == UTC
    assert await store.get_run("absent") is None


async def test_runs_list_live_first_then_newest_first(store: Store) -> None:
    await store.upsert_run(a_run("old-live", launched_at=NOW - timedelta(days=2)))
    await store.upsert_run(a_run("new-done", launched_at=NOW, live=False))
    await store.upsert_run(a_run("new-live", launched_at=NOW - timedelta(days=1)))

    assert [r.name for r in await store.list_runs()] == ["new-live", "old-live", "new-done"]
    assert await store.run_names() == ["new-done", "new-live", "old-live"]


async def test_upserting_a_run_replaces_the_row_and_keeps_its_checks(store: Store) -> None:
    await store.commit_check(a_check(a_run()))
    await store.upsert_run(a_run(status="done", live=False))

    run = await store.get_run("llama-ft")
    assert run is not None and (run.status, run.live) == ("done", False)
    assert len(await store.recent_checks("llama-ft")) == 1


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.upsert_run(a_run(launched_at=datetime(2026, 1, 1)))


# -- checks and alerts --------------------------------------------------------------------------


async def test_a_check_commit_writes_run_check_alerts_and_messages(store: Store) -> None:
    first = a_check(
        a_run(status="running"),
        health="alert",
        reasons=("stale",),
        alerts_opened=(OpenAlert("llama-ft", "stale", NOW, NOW, "step stale"),),
        messages=(("llama-ft:stale:1", a_message()),),
    )
    assert len(await store.commit_check(first)) == 1

    later = NOW + timedelta(minutes=3)
    second = a_check(
        a_run(status="running", attempt=2),
        at=later,
        alerts_opened=(OpenAlert("llama-ft", "retry", later, later, "attempt 2"),),
        alerts_resolved=("stale",),
        messages=(("llama-ft:recovered:1", a_message("recovered")),),
    )
    await store.commit_check(second)
    resend_at = later + timedelta(hours=4)
    await store.commit_check(a_check(a_run(attempt=2), at=resend_at, alerts_resent=("retry",)))

    run = await store.get_run("llama-ft")
    assert run is not None and run.attempt == 2
    assert [(at, health) for at, _, health in await store.recent_checks("llama-ft")] == [
        (resend_at, "ok"),
        (later, "ok"),
        (NOW, "alert"),
    ]
    alerts = await store.open_alerts("llama-ft")
    assert list(alerts) == ["retry"]
    assert alerts["retry"].last_sent_at == resend_at
    assert [item.message.title for item in await store.pending(later)] == ["stalled", "recovered"]


async def test_recent_checks_are_newest_first_and_limited(store: Store) -> None:
    for minute in range(5):
        await store.commit_check(a_check(a_run(), at=NOW + timedelta(minutes=minute)))
    recent = await store.recent_checks("llama-ft", limit=2)
    assert [at for at, _, _ in recent] == [NOW + timedelta(minutes=4), NOW + timedelta(minutes=3)]


async def test_a_failing_check_commit_writes_nothing_of_itself(store: Store) -> None:
    opened = tuple(OpenAlert("llama-ft", c, NOW, NOW, c) for c in ("stale", "gpu_low"))
    await store.commit_check(a_check(a_run(), alerts_opened=opened))
    before = (await store.get_run("llama-ft"), await store.outbox_counts())

    # Run row, check row and the resolve come first; the duplicate open alert then fails.
    broken = a_check(
        a_run(status="failed", live=False),
        at=NOW + timedelta(minutes=1),
        alerts_resolved=("stale",),
        alerts_opened=(OpenAlert("llama-ft", "gpu_low", NOW, None, "again"),),
        messages=(("k", a_message()),),
    )
    with pytest.raises(StoreError, match="UNIQUE constraint failed"):
        await store.commit_check(broken)

    assert (await store.get_run("llama-ft"), await store.outbox_counts()) == before
    assert len(await store.recent_checks("llama-ft")) == 1
    assert set(await store.open_alerts("llama-ft")) == {"stale", "gpu_low"}
    await store.commit_check(a_check(a_run(), at=NOW + timedelta(minutes=2)))  # still usable


async def test_a_check_violating_a_constraint_leaves_the_run_row_as_it_was(store: Store) -> None:
    await store.upsert_run(a_run(status="running"))
    with pytest.raises(StoreError, match="CHECK constraint failed"):
        await store.commit_check(a_check(a_run(status="failed"), status_line=""))
    run = await store.get_run("llama-ft")
    assert run is not None and run.status == "running"
    assert await store.recent_checks("llama-ft") == []


async def test_a_redone_check_enqueues_no_message_twice(store: Store) -> None:
    check = a_check(a_run(), messages=(("k1", a_message()), ("k2", a_message("other"))))
    first = await store.commit_check(check)
    again = await store.commit_check(a_check(a_run(), messages=check.messages))
    assert len(first) == 2 and again == []
    assert await store.outbox_counts() == (0, 2)


# -- outbox -------------------------------------------------------------------------------------


async def test_enqueue_skips_a_known_dedupe_key_but_not_missing_keys(store: Store) -> None:
    assert await store.enqueue(a_message(), dedupe_key="once", at=NOW) is not None
    assert await store.enqueue(a_message(), dedupe_key="once", at=NOW) is None
    assert await store.enqueue(a_message(), dedupe_key=None, at=NOW) is not None
    assert await store.enqueue(a_message(), dedupe_key=None, at=NOW) is not None
    assert await store.outbox_counts() == (0, 3)


async def test_pending_is_in_id_order_and_waits_for_next_try_at(store: Store) -> None:
    ids = [await store.enqueue(a_message(f"m{i}"), dedupe_key=None, at=NOW) for i in range(3)]
    assert None not in ids
    later = NOW + timedelta(seconds=30)
    await store.defer(ids[0] or 0, until=later, error="429 retry after 30 s")

    assert [item.id for item in await store.pending(NOW)] == ids[1:]
    due = await store.pending(later)
    assert [item.id for item in due] == ids
    assert (due[0].attempts, due[0].created_at, due[0].message) == (1, NOW, a_message("m0"))
    assert len(await store.pending(later, limit=2)) == 2


async def test_mark_sent_is_true_for_exactly_one_of_concurrent_callers(
    store: Store, tmp_path: Path
) -> None:
    first = await store.enqueue(a_message(), dedupe_key=None, at=NOW)
    second = await store.enqueue(a_message(), dedupe_key=None, at=NOW)
    assert first is not None and second is not None

    same_store = await asyncio.gather(*(store.mark_sent(first, NOW) for _ in range(3)))
    assert sorted(same_store) == [False, False, True]

    async with await Store.open(tmp_path / "watch.db") as other:  # another connection
        two_stores = await asyncio.gather(
            store.mark_sent(second, NOW), other.mark_sent(second, NOW)
        )
    assert sorted(two_stores) == [False, True]
    assert await store.pending(NOW) == []
    assert await store.outbox_counts() == (2, 0)


# -- actions, audit, meta -----------------------------------------------------------------------


async def test_an_action_is_claimed_once_even_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    async with await Store.open(path) as store:
        assert await store.claim_action("llama-ft", "teardown", NOW)
        assert not await store.claim_action("llama-ft", "teardown", NOW)
        assert await store.claim_action("other", "teardown", NOW)
        assert await store.action_result("llama-ft", "teardown") is None
    async with await Store.open(path) as store:
        assert not await store.claim_action("llama-ft", "teardown", NOW)
        await store.finish_action("llama-ft", "teardown", "destroyed", NOW)
        assert await store.action_result("llama-ft", "teardown") == "destroyed"


async def test_a_released_action_can_be_claimed_again(store: Store) -> None:
    assert await store.claim_action("llama-ft", "kill:2", NOW)
    await store.release_action("llama-ft", "kill:2")
    assert await store.action_result("llama-ft", "kill:2") is None
    assert await store.claim_action("llama-ft", "kill:2", NOW)


async def test_audit_keeps_odd_text_cut_to_the_limit_newest_first(store: Store) -> None:
    await store.audit(at=NOW, chat_id=1, user_id=2, command="/runs", verdict="ok")
    odd = "/kill '; DROP TABLE runs; -- \x00 \udcff $(rm -rf /) " + "x" * 1000
    later = NOW + timedelta(seconds=1)
    await store.audit(at=later, chat_id=None, user_id=None, command=odd, verdict="refused")

    rows = await store.audit_rows()
    assert [row["verdict"] for row in rows] == ["refused", "ok"]
    command = rows[0]["command"]
    assert isinstance(command, str) and len(command) == TEXT_MAX
    assert command.startswith("/kill '; DROP TABLE runs; -- \x00 ? $(rm -rf /) x")
    assert (rows[0]["at"], rows[0]["chat_id"], rows[1]["user_id"]) == (later, None, 2)
    assert await store.run_names() == []
    assert len(await store.audit_rows(limit=1)) == 1


async def test_meta_values_are_set_and_replaced(store: Store) -> None:
    assert await store.get_meta("summary_date") is None
    await store.set_meta("summary_date", "2026-11-27")
    await store.set_meta("summary_date", "2026-11-28")
    assert await store.get_meta("summary_date") == "2026-11-28"


# -- faults -------------------------------------------------------------------------------------


async def test_a_lock_held_by_another_process_is_named_and_then_cleared(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    async with await Store.open(path, busy_timeout_ms=50) as store:
        await store.set_meta("k", "before")
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            HOLD_WRITE_LOCK,
            str(path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None
            assert await holder.stdout.readline() == b"locked\n"
            with pytest.raises(StoreError, match="locked by another process") as caught:
                await store.set_meta("k", "during")
            assert str(path) in str(caught.value)
            with pytest.raises(StoreError, match="locked by another process"):
                await store.commit_check(a_check(a_run()))
            assert await store.get_meta("k") == "before"  # WAL: reads go on
        finally:
            await holder.communicate(b"\n")
        assert holder.returncode == 0

        await store.set_meta("k", "after")
        await store.commit_check(a_check(a_run()))
        assert await store.get_meta("k") == "after"


async def test_a_full_disk_is_reported_and_leaves_the_database_intact(tmp_path: Path) -> None:
    path = tmp_path / "watch.db"
    async with await Store.open(path) as store:
        await store.commit_check(a_check(a_run(status="running")))
    pages = int(sql(path, "PRAGMA page_count")[0][0])

    async with await Store.open(path, max_page_count=pages + 2) as store:
        with pytest.raises(StoreError, match="disk full"):
            for _ in range(20):
                await store.enqueue(a_message("x" * 3000), dedupe_key=None, at=NOW)
        counts = await store.outbox_counts()
        big = tuple((f"k{i}", a_message("y" * 20_000)) for i in range(5))
        with pytest.raises(StoreError, match="disk full"):
            await store.commit_check(a_check(a_run(status="done"), messages=big))
        run = await store.get_run("llama-ft")
        assert run is not None and run.status == "running"
        assert await store.outbox_counts() == counts

    assert sql(path, "PRAGMA integrity_check") == [("ok",)]
    async with await Store.open(path) as store:  # room again: everything works
        await store.commit_check(a_check(a_run(status="done"), messages=big))
        assert await store.outbox_counts() == (0, counts[1] + len(big))
