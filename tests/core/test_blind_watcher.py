"""Issue 11: a watcher that cannot check a run says so, and its wait channel never stays dead.
Through Service (what `serve` runs), with a real store; fakes only at the transport port."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import Config, RunConfig, WatcherConfig
from core.console import ConsoleNotifier
from core.errors import TransportError
from core.models import ExecResult, MessageKind, RunRecord
from core.service import Service
from core.store import Store
from tests.conftest import FakeClock


def config(tmp_path: Path, **watcher: object) -> Config:
    run = RunConfig(name="ft", run_dir="/w/ft", command="python t.py", host="127.0.0.1")
    return Config(
        watcher=WatcherConfig(state_dir=tmp_path / "state", **watcher),  # type: ignore[arg-type]
        runs=[run],
    )


class Broken:
    """transport_for of a run whose every check raises something nobody foresaw."""

    def __init__(self) -> None:
        self.fail = True

    def __call__(self, record: RunRecord) -> Waits:
        if self.fail:
            raise OSError(13, "Permission denied", "/keys/id_ed25519")
        return Waits([])


class Waits:
    label = "waits"

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
        lasting: bool = False,
    ) -> ExecResult:
        if not self.answers:
            raise TransportError(self.label, "no more answers")
        return ExecResult(0, self.answers.pop(0), b"")


async def test_a_check_that_keeps_failing_is_alerted_once_with_its_reason_then_recovers(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    record = RunRecord(name="ft", run_dir="/w/ft", launched_at=clock.now, ssh_host="127.0.0.1")
    await store.upsert_run(record)
    transport_for = Broken()
    cfg = config(tmp_path, failing_checks_alert=3)
    service = Service(cfg, store, ConsoleNotifier(io.StringIO()), None, transport_for, clock)
    for _ in range(5):  # the scheduler's job: it raises, the scheduler retries later
        with pytest.raises(OSError):
            await service.check("ft")
        clock.advance(60)
    alerts = [i.message for i in await store.pending(clock.now)]
    assert len(alerts) == 1  # after the third, once per episode
    assert alerts[0].kind is MessageKind.ALERT and "cannot check" in alerts[0].title
    assert "3 checks in a row failed" in alerts[0].reasons[0]
    assert "PermissionError: [Errno 13] Permission denied" in alerts[0].reasons[0]

    transport_for.fail = False
    await service.check("ft")  # works again (the probe fails, as a probe may: no exception)
    messages = [i.message for i in await store.pending(clock.now)]
    assert [m.kind for m in messages] == [MessageKind.ALERT, MessageKind.RECOVERY]
    await store.close()


async def test_a_wait_channel_that_dies_is_restarted_with_a_bounded_jittered_backoff(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    record = RunRecord(
        name="ft", run_dir="/w/ft", launched_at=clock.now, status="running", attempt=1
    )
    await store.upsert_run(record)
    answers = [
        json.dumps({"reason": "changed", "state": {"status": "running", "attempt": 2}}).encode(),
        json.dumps({"reason": "changed", "state": {"status": "done", "attempt": 2}}).encode(),
    ]
    transport = Waits(answers)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    service = Service(
        config(tmp_path),
        store,
        ConsoleNotifier(io.StringIO()),
        None,
        lambda r: transport,
        clock,
        sleep=fake_sleep,
        jitter=lambda: 0.0,
    )
    woken: list[str] = []
    calls = 0

    def wake(run: str) -> None:  # dies on the first news, as a bug in it would
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("scheduler gone")
        woken.append(run)

    service.scheduler.wake = wake  # type: ignore[method-assign]
    service.scheduler.schedule = lambda run, delay_s: None  # type: ignore[method-assign]
    service.watch(replace(record))
    await service._waiters["ft"]
    assert service.channel_restarts == {"ft": 1}
    assert sleeps == [2.5]  # 5 s, jittered to half
    assert woken == ["ft"]  # the restarted channel heard the end
    await store.close()
