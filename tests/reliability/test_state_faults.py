"""Broken state.json files under a running service (the real `supervisor probe` reads them): a
truncated, empty, non-JSON, future-schema file or a step of -1 opens one clear alert per episode,
the service keeps checking, and a sound state closes it with one recovery."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.launch import SUPERVISOR_PACKAGE
from core.memory import Memory
from core.models import RunRecord
from core.run_settings import settings_for
from core.runtime import utc_now
from core.service import Service
from core.store import Store
from tests.reliability.helpers import RUN, LocalHarness, local_config, wait_for

BROKEN = [
    (b'{"schema": 1, "run": "llama-ft", "status": "runn', "not valid JSON"),
    (b"", "empty"),
    (b"garbage \x00\xff not json", "not valid JSON"),
    (json.dumps({"schema": 2, "run": RUN, "status": "running"}).encode(), "schema 2"),
    (None, "step"),  # a sound file whose step is -1
]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sound_state(*, step: int = 10) -> bytes:
    now = datetime.now(UTC)
    return json.dumps(
        {
            "schema": 1,
            "run": RUN,
            "status": "running",
            "outcome": None,
            "attempt": 1,
            "max_attempts": 3,
            "step": step,
            "total_steps": 100,
            "last_step_at": iso(now),
            "last_output_at": iso(now),
            "heartbeat_at": iso(now),
            "started_at": iso(now - timedelta(minutes=1)),
            "ended_at": None,
            "throughput": None,
            "gpus": [],
            "fixes": [],
            "last_failure": None,
            "knobs": {},
            "pid": os.getpid(),
            "trainer_pid": None,
        }
    ).encode()


async def checked(service: Service, store: Store, status: str) -> None:
    """Wake a check now and wait until one whose status line says `status` is stored."""
    before = len(await store.recent_checks(RUN, limit=1000))
    service.scheduler.wake(RUN)

    async def seen() -> bool:
        rows = await store.recent_checks(RUN, limit=1000)
        return len(rows) > before and rows[0][1].split()[1] == status

    await wait_for(seen, 15, what=f"a check saying {status}")


async def test_each_broken_state_file_gets_one_clear_alert_and_watching_goes_on(
    tmp_path: Path,
) -> None:
    config = local_config(tmp_path, "true")  # no supervisor: the test writes state.json
    h = LocalHarness(config)
    run_dir = tmp_path / "runs" / RUN
    run_dir.mkdir(parents=True)
    state = run_dir / "state.json"
    state.write_bytes(sound_state())
    root = settings_for(config, RUN).remote_root
    await h.transport.put_tree(SUPERVISOR_PACKAGE, f"{root}/supervisor")
    store = await Store.open(h.db)
    now = utc_now()
    launched_at = now - timedelta(minutes=5)
    memory = Memory(launched_at=launched_at).to_json()
    await store.upsert_run(RunRecord(RUN, str(run_dir), launched_at, memory=memory))
    service = h.service(store)
    try:
        await service.start()
        await checked(service, store, "running")
        for content, _ in BROKEN:
            state.write_bytes(sound_state(step=-1) if content is None else content)
            await checked(service, store, "invalid")
            await checked(service, store, "invalid")  # a second check: no second alert
            state.write_bytes(sound_state())
            await checked(service, store, "running")
        assert await service.drain_outbox()
    finally:
        await service.stop()
        await store.close()
    text = h.out.getvalue()
    assert h.kinds() == ["alert", "recovery"] * len(BROKEN), text
    alerts = text.split("[alert]")[1:]
    for (_, expected), alert in zip(BROKEN, alerts, strict=True):
        assert "cannot read the supervisor's state" in alert
        assert expected in alert.split("[recovery]")[0]
    assert "Traceback" not in text
