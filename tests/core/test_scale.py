"""Issue 16, "5,000 runs through serve": a restart spreads its first checks, checks drift out
of lock-step, the status lines have a retention, the rescan reads live runs only, and a run's
settings are found without scanning the fleet. Pure where it can be; a real store else."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.config import Config, RunConfig
from core.errors import StaleRun
from core.models import CheckCommit, MessageKind, OpenAlert, OutboundMessage, RunRecord
from core.scheduling import jittered
from core.service import resume_delays
from core.store import CHECKS_KEEP_S, Store
from core.vocab import TeardownState
from core.watcher import Watcher

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def record(i: int, due: datetime | None) -> RunRecord:
    return RunRecord(name=f"r{i:04d}", run_dir="/w", launched_at=NOW, next_check_at=due)


def test_a_restart_starts_at_most_its_rate_of_first_checks_a_second_oldest_due_first() -> None:
    overdue = [record(i, NOW - timedelta(minutes=i % 90)) for i in range(5000)]
    later = record(9999, NOW + timedelta(hours=2))

    delays = resume_delays([later, *overdue], NOW, per_s=50.0)

    seconds = [int(d) for _, d in delays if d < 3600]
    assert max(seconds.count(s) for s in set(seconds)) <= 50
    assert len(seconds) == 5000 and max(seconds) == 99  # 5,000 at 50/s: 100 s
    firsts = [r for r, d in delays if d < 1]
    assert all(r.next_check_at == NOW - timedelta(minutes=89) for r in firsts[:50])
    assert dict((r.name, d) for r, d in delays)["r9999"] == 7200.0  # not due: kept


def test_intervals_are_jittered_within_five_percent_and_wakes_are_not() -> None:
    spread = {round(jittered(60.0, j / 10), 3) for j in range(10)}
    assert len(spread) == 10 and min(spread) >= 57.0 and max(spread) < 63.0
    assert jittered(0.3, 0.9) == 0.3


async def test_old_status_lines_are_pruned_and_recent_ones_kept(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    run = record(1, None)
    await store.upsert_run(run)
    old = NOW - timedelta(seconds=CHECKS_KEEP_S + 60)
    for at in (old, old + timedelta(seconds=30), NOW - timedelta(hours=1)):
        line = f"{at:%Y-%m-%dT%H:%M:%SZ} running 1/3 - - - - r0001"
        await store.commit_check(CheckCommit(run=run, at=at, status_line=line, health="ok"))

    assert await store.prune_checks(NOW) == 2
    kept = await store.recent_checks("r0001")
    assert [at for at, _, _ in kept] == [NOW - timedelta(hours=1)]
    await store.close()


async def test_the_rescan_reads_live_runs_only(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    for i in range(5):
        await store.upsert_run(replace(record(i, None), live=i % 2 == 0))

    assert sorted(r.name for r in await store.live_runs()) == ["r0000", "r0002", "r0004"]
    # what each 30 s rescan reads: keys of the live runs, full rows of the new ones only
    keys = await store.live_run_keys()
    assert sorted(keys) == [("r0000", NOW), ("r0002", NOW), ("r0004", NOW)]
    named = await store.runs_named(["r0002", "r0003", "none"])
    assert [(r.name, r.live) for r in named] == [("r0002", True), ("r0003", False)]
    await store.close()


def test_a_run_is_found_by_name_and_a_replaced_list_is_seen() -> None:
    runs = [RunConfig(name=f"r{i}", run_dir="/w", command="x", local=True) for i in range(3)]
    config = Config(runs=runs)
    assert config.find_run("r2") is runs[2]
    config.set_runs([RunConfig(name="r2", run_dir="/other", command="x", local=True)])
    found = config.find_run("r2")
    assert found is not None and found.run_dir == "/other"
    assert config.find_run("r0") is None


async def test_checks_finishing_together_share_a_transaction_each_all_or_nothing(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    runs = [record(i, None) for i in range(20)]
    for run in runs:
        await store.upsert_run(run)
    await store.save_run(replace(runs[7], ended_at=NOW))  # ended by another shell meanwhile
    versions: list[int] = []
    batches: list[int] = []
    write = store._write_checks

    async def counted(commits: list[CheckCommit]) -> list[list[int] | BaseException]:
        batches.append(len(commits))
        return await write(commits)

    store._write_checks = counted  # type: ignore[method-assign]

    async def commit(run: RunRecord) -> str:
        line = f"{NOW:%Y-%m-%dT%H:%M:%SZ} running 1/3 - - - - {run.name}"
        try:
            await store.commit_check(CheckCommit(run=run, at=NOW, status_line=line, health="ok"))
        except StaleRun:
            return "stale"
        versions.append(len(await store.recent_checks(run.name)))
        return "saved"

    results = await asyncio.gather(*(commit(run) for run in runs))

    assert sum(batches) == 20 and len(batches) < 20  # fewer transactions (fsyncs) than checks
    assert results.count("stale") == 1 and results[7] == "stale"
    assert versions == [1] * 19
    assert await store.recent_checks(runs[7].name) == []  # its savepoint rolled back alone
    await store.close()


async def test_a_check_reads_with_no_thread_call_and_a_batch_commits_in_one(
    tmp_path: Path,
) -> None:
    # each call is a thread round trip for the loop (a check made ~8 of them); a check's read
    # is on the loop's own read-only connection now (Database._read): none
    store = await Store.open(tmp_path / "db.sqlite3")
    runs = [record(i, None) for i in range(3)]
    for run in runs:
        await store.upsert_run(run)
    calls: list[object] = []
    execute = store._conn._execute

    async def counted(fn: object, *args: object, **kwargs: object) -> object:
        calls.append(fn)
        return await execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    store._conn._execute = counted  # type: ignore[method-assign]
    found, alerts = await store.run_for_check("r0001")
    assert found == runs[1] and alerts == {} and calls == []

    alert = OpenAlert("r0001", "stale", NOW, NOW, "step stale")
    message = OutboundMessage(kind=MessageKind.ALERT, title="stale", run="r0001")
    line = f"{NOW:%Y-%m-%dT%H:%M:%SZ} running 1/3 - - - - r0001"
    opened = CheckCommit(
        run=runs[1],
        at=NOW,
        status_line=line,
        health="alert",
        alerts_opened=(alert,),
        messages=(("r0001:stale", message),),
    )
    plain = [CheckCommit(run=r, at=NOW, status_line=line, health="ok") for r in runs[::2]]
    ids = await asyncio.gather(*(store.commit_check(c) for c in (opened, *plain)))
    assert len(ids[0]) == 1 and ids[1:] == [[], []]
    assert len(calls) <= 2  # the first check's batch, then the two that waited for it

    calls.clear()
    found, alerts = await store.run_for_check("r0001")
    assert found is not None and found.last_status_line == runs[1].last_status_line
    assert list(alerts) == ["stale"] and calls == []
    await store.close()


def test_a_runs_settings_are_made_once_and_made_again_when_its_entry_is_replaced() -> None:
    config = Config(runs=[RunConfig(name="r1", run_dir="/w", command="x", local=True)])
    watcher = Watcher(None, config, lambda r: None, None, lambda: NOW)  # type: ignore[arg-type]
    first = watcher.settings("r1")
    assert watcher.settings("r1") is first and first.destroy_on_done
    replaced = RunConfig(name="r1", run_dir="/w", command="x", local=True, destroy_on_done=False)
    config.set_runs([replaced])  # what a learn or a reload of the config file does
    again = watcher.settings("r1")
    assert again is not first and not again.destroy_on_done
    assert watcher.settings("r1") is again
    config.set_runs([])
    assert not watcher.settings("r1").known


async def test_a_healthy_check_that_tells_nothing_skips_the_fsync_and_one_that_tells_does_not(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    run = record(1, None)
    await store.upsert_run(run)
    statements: list[str] = []
    await store._in_thread("tracing", lambda db: db.set_trace_callback(statements.append))
    line = f"{NOW:%Y-%m-%dT%H:%M:%SZ} running 1/3 - - - - r0001"

    await store.commit_check(CheckCommit(run=run, at=NOW, status_line=line, health="ok"))
    quiet, statements[:] = list(statements), []
    message = OutboundMessage(kind=MessageKind.ALERT, title="stale", run="r0001")
    told = CheckCommit(
        run=run, at=NOW, status_line=line, health="alert", messages=(("r0001:k", message),)
    )
    await store.commit_check(told)

    assert quiet[0] == "PRAGMA synchronous = NORMAL" and "COMMIT" in quiet
    assert quiet[-1] == "PRAGMA synchronous = FULL"  # back for every other write
    assert "COMMIT" in statements and not any("synchronous" in s for s in statements)
    assert len(await store.recent_checks("r0001")) == 2
    assert (await store._fetch("reading", "PRAGMA synchronous", ()))[0][0] == 2  # FULL
    await store.close()


async def test_the_heartbeats_kept_instance_read_is_the_ended_undestroyed_runs_only(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    ended = {"ended_at": NOW, "instance_id": "42"}
    for i, changes in enumerate(
        [
            {},  # live
            ended,  # kept: a reminder is due in time
            {**ended, "teardown": TeardownState.DESTROYED.value},
            {**ended, "kept_acked_at": NOW},
            {"ended_at": NOW},  # no cloud instance
            {**ended, "teardown": TeardownState.FAILED.value},  # a destroy that failed: kept
        ]
    ):
        await store.upsert_run(replace(record(i, None), **changes))  # type: ignore[arg-type]

    assert sorted(r.name for r in await store.kept_candidates()) == ["r0001", "r0005"]
    await store.close()
