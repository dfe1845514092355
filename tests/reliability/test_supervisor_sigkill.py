"""The supervisor SIGKILLed mid-attempt, under a running service: the watcher alerts
`supervisor dead` once its heartbeat is stale on consecutive checks, and the trainer does not
run on as an orphan (the guard that leads its process group ends the group)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from core.store import Store
from tests.reliability.helpers import (
    RUN,
    LocalHarness,
    db_rows,
    local_config,
    process_gone,
    read_state,
    trainer_command,
    wait_for,
    write_trainer,
)


async def test_a_killed_supervisor_is_alerted_once_and_leaves_no_orphan_trainer(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "runs" / RUN
    (run_dir).mkdir(parents=True)
    (run_dir / "crashed-once").touch()  # this trainer never crashes: it trains for 100 s
    command = trainer_command(write_trainer(tmp_path), run_dir, steps=500, step_s=0.2)
    config = local_config(
        tmp_path,
        command,
        thresholds={"heartbeat_stale": 1.5, "stale_checks": 2, "stall_after": 600},
        cadence={"scale": 1 / 60, "early": [60.0] * 8, "cruise": 60.0, "alert": 60.0},
    )
    h = LocalHarness(config)
    store = await Store.open(h.db)
    service = h.service(store)
    try:
        await h.launch(store)
        await service.start()
        await wait_for(lambda: (run_dir / "trainer-1.pid").exists(), 20, what="the trainer")
        await wait_for(lambda: read_state(run_dir).get("step") is not None, 20, what="a step")
        trainer_pid = int((run_dir / "trainer-1.pid").read_text())
        state = read_state(run_dir)
        guard_pid = state["trainer_pid"]
        os.kill(state["pid"], signal.SIGKILL)

        await wait_for(lambda: process_gone(trainer_pid), 15, what="the trainer to be ended")
        # the guard ends the group, then itself: a moment after the trainer, not before
        await wait_for(lambda: process_gone(guard_pid), 15, what="the guard to exit")

        async def alerted() -> bool:
            return "supervisor_dead" in await store.open_alerts(RUN)

        await wait_for(alerted, 30, what="the supervisor_dead alert")
        await service.drain_outbox()
        checks_then = len(h.lines)
        await wait_for(
            lambda: len(h.lines) >= checks_then + 2, 10, what="two more checks"
        )  # it keeps watching
        await service.drain_outbox()
    finally:
        await service.stop()
        await store.close()
    text = h.out.getvalue()
    assert text.count("supervisor dead: no heartbeat for") == 1, text  # once, not every check
    assert h.kinds() == ["alert"]
    assert db_rows(h.db, "SELECT live, status FROM runs WHERE name = ?", (RUN,)) == [(1, "running")]
