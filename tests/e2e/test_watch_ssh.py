"""The watcher end to end over a real OpenSSH sshd on 127.0.0.1: a real supervisor launched over
SFTP + exec, a real trainer that really crashes once, the cadence, the retry alert, `done`, the
teardown, restarts of the watcher, sshd going away and coming back, garbage state files."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig, WatcherConfig
from core.console import ConsoleNotifier
from core.launch import launch, plan_launch, pynvml_source
from core.models import InstanceInfo, InstanceState, RunRecord
from core.providers import RecordingProvider
from core.run_settings import settings_for
from core.runtime import utc_now
from core.service import Service
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.store import Store
from core.watcher import Watcher

if TYPE_CHECKING:
    from tests.fixtures.sshd import SshdServer

INSTANCE = "4242"

CRASH_ONCE = """
import os, sys, time
marker = os.path.join(sys.argv[1], "crashed-once")
steps = int(sys.argv[2])
for step in range(1, steps + 1):
    time.sleep(0.1)
    sys.stdout.write(f"\\rtrain: {step}/{steps} [00:01<00:01, 10.0it/s]")
    sys.stdout.flush()
    if step == 5 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
print("\\ndone", flush=True)
"""


def make_config(tmp_path: Path, sshd: SshdServer, *, steps: int = 20) -> Config:
    trainer = tmp_path / "train.py"
    trainer.write_text(CRASH_ONCE)
    run_dir = tmp_path / "runs" / "llama-ft"
    run = RunConfig(
        name="llama-ft",
        instance_id=INSTANCE,
        user=sshd.user,
        key=sshd.key_path,
        run_dir=str(run_dir),
        command=f"{sys.executable} {trainer} {run_dir} {steps}",
        env={"PYTHONUNBUFFERED": "1"},
        backoff_s=0.3,
        heartbeat_s=0.3,
        max_attempts=3,
    )
    return Config(
        watcher=WatcherConfig(
            state_dir=tmp_path / "state",
            python=sys.executable,
            remote_root=str(tmp_path / "remote"),
            wait_timeout=20.0,
        ),
        cadence=CadenceConfig(scale=1 / 60),
        thresholds=ThresholdsConfig(
            heartbeat_stale=5, stall_after=30, unreachable_checks=2, unreachable_after=0
        ),
        runs=[run],
    )


def provider_for(sshd: SshdServer) -> RecordingProvider:
    return RecordingProvider(
        [
            InstanceInfo(
                id=INSTANCE,
                state=InstanceState.RUNNING,
                ssh_host=sshd.host,
                ssh_port=sshd.port,
                dph_total=1.5,
            )
        ]
    )


class Harness:
    """The serve composition with a console notifier writing to a buffer."""

    def __init__(self, config: Config, provider: RecordingProvider, tmp_path: Path) -> None:
        self.config = config
        self.provider = provider
        self.pool = SshPool(
            tmp_path / "state" / "known_hosts",
            options=SshOptions(backoff_initial_s=0.05, backoff_max_s=0.2),
        )
        self.out = io.StringIO()
        self.lines: list[str] = []

    def provider_for(self, record: RunRecord) -> RecordingProvider:
        return self.provider

    def transport_for(self, record: RunRecord) -> SshTransport:
        assert record.ssh_host is not None and record.ssh_port is not None
        run = self.config.runs[0]
        target = SshTarget(record.ssh_host, record.ssh_port, record.ssh_user or "root", run.key)
        return SshTransport(self.pool, target, SshOptions(backoff_initial_s=0.05))

    def service(self, store: Store) -> Service:
        return Service(
            self.config,
            store,
            ConsoleNotifier(self.out),
            self.provider_for,
            self.transport_for,
            utc_now,
            emit=self.lines.append,
            min_gap_s=0.0,
            hold_s=0.0,
        )

    def kinds(self) -> list[str]:
        return [
            line.split("]")[0][1:]
            for line in self.out.getvalue().splitlines()
            if line.startswith("[")
        ]


async def launched(h: Harness, store: Store) -> RunRecord:
    run = h.config.runs[0]
    plan = await plan_launch(run, h.config, h.provider, utc_now)
    return await launch(plan, run, h.config, store, h.transport_for(plan.record), h.provider)


async def test_a_run_crashes_retries_and_finishes_with_one_alert_and_one_terminal_message(
    tmp_path: Path, sshd: SshdServer
) -> None:
    h = Harness(make_config(tmp_path, sshd), provider_for(sshd), tmp_path)
    async with AsyncExitStack() as stack:
        store = await Store.open(tmp_path / "state" / "db.sqlite3")
        stack.push_async_callback(store.close)
        stack.push_async_callback(h.pool.close)
        record = await launched(h, store)
        assert (record.ssh_host, record.ssh_port) == (sshd.host, sshd.port)  # from the instance
        nvml = pynvml_source()  # NVML's one-file binding travels beside the supervisor
        assert nvml is not None
        uploaded = Path(settings_for(h.config, "llama-ft").remote_root, "pynvml.py")
        assert uploaded.read_bytes() == nvml.read_bytes()
        service = h.service(store)
        stack.push_async_callback(service.stop)
        await service.start()
        await asyncio.wait_for(service.finished["llama-ft"].wait(), 60)
        assert await service.drain_outbox()
        final = await store.get_run("llama-ft")
    assert final is not None and final.status == "done" and not final.live
    assert h.kinds() == ["alert", "terminal"]
    text = h.out.getvalue()
    assert "attempt 2/3 started after gpu_fault" in text
    assert "CUDA error: an illegal memory access" in text
    assert "4242 destroyed" in text
    assert [c[0] for c in h.provider.requests].count("destroy") == 1
    assert ("label", INSTANCE, "llama-ft") in h.provider.requests
    statuses = [line.split()[1] for line in h.lines]
    assert statuses[-1] == "done"
    assert any(line.split()[2] == "2/3" for line in h.lines)
    assert all(line.endswith(" llama-ft") for line in h.lines)


async def test_a_restarted_watcher_resumes_without_repeating_alerts_or_teardowns(
    tmp_path: Path, sshd: SshdServer
) -> None:
    h = Harness(make_config(tmp_path, sshd, steps=40), provider_for(sshd), tmp_path)
    db = tmp_path / "state" / "db.sqlite3"
    store = await Store.open(db)
    await launched(h, store)
    first = h.service(store)
    await first.start()
    for _ in range(200):  # until the retry alert went out
        if "alert" in h.kinds():
            break
        await asyncio.sleep(0.1)
    await first.stop()  # the watcher dies mid-run
    await store.close()

    store = await Store.open(db)
    second = h.service(store)
    await second.start()
    await asyncio.wait_for(second.finished["llama-ft"].wait(), 60)
    assert await second.drain_outbox()
    await second.stop()
    # a third start after the end finds nothing to do and sends nothing
    third = h.service(store)
    await third.start()
    await asyncio.sleep(0.5)
    await third.stop()
    await store.close()
    await h.pool.close()
    assert h.kinds() == ["alert", "terminal"]
    assert [c[0] for c in h.provider.requests].count("destroy") == 1


async def seen_the_retry(watcher: Watcher, store: Store) -> None:
    """Check until a check has seen the trainer's crash at its fifth step and the retry: on a
    loaded machine the supervisor's start over SSH can outlast a fixed sleep, and the retry's
    message would then come after the ones a test is about."""
    for _ in range(300):
        assert await watcher.check("llama-ft") is not None
        record = await store.get_run("llama-ft")
        if record is not None and record.attempt >= 2:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no check saw the retry")


async def test_sshd_going_away_is_recorded_alerted_after_n_checks_and_watching_resumes(
    tmp_path: Path, sshd: SshdServer
) -> None:
    config = make_config(tmp_path, sshd, steps=400)
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    await launched(h, store)
    watcher = Watcher(store, config, h.transport_for, h.provider_for, utc_now, emit=h.lines.append)
    await seen_the_retry(watcher, store)
    sshd.stop()
    await watcher.check("llama-ft")
    assert h.lines[-1].split()[1] == "unreachable"
    assert await store.open_alerts("llama-ft") == {}  # one failure is not an alert
    await asyncio.sleep(0.3)
    await watcher.check("llama-ft")
    assert set(await store.open_alerts("llama-ft")) == {"unreachable"}
    sshd.start()
    await asyncio.sleep(0.3)
    interval = await watcher.check("llama-ft")
    assert interval is not None
    assert h.lines[-1].split()[1] == "running"
    assert await store.open_alerts("llama-ft") == {}
    sent, unsent = await store.outbox_counts()
    pending = [i.message.title for i in await store.pending(utc_now())]
    # the retry (the trainer crashed before the first check), the unreachable alert, its recovery
    assert len(pending) == unsent == 3, pending
    assert "unreachable" in pending[1] and "recovered" in pending[2]
    await watcher.exits.ctl((await store.get_run("llama-ft")), "stop")  # type: ignore[arg-type]
    await store.close()
    await h.pool.close()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"garbage \x00\xff", "not valid JSON"),
        (b'{"schema": 1, "run": "llama-ft", "status": "runn', "not valid JSON"),
        (json.dumps({"schema": 2, "run": "llama-ft"}).encode(), "schema 2 is not supported"),
        (
            json.dumps(
                {
                    "schema": 1,
                    "run": "llama-ft",
                    "status": "running",
                    "attempt": 1,
                    "max_attempts": 3,
                    "step": -1,
                }
            ).encode(),
            "step",
        ),
    ],
)
async def test_a_garbage_state_file_gets_a_clear_alert_not_a_traceback(
    tmp_path: Path, sshd: SshdServer, content: bytes, expected: str
) -> None:
    config = make_config(tmp_path, sshd)
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    record = await launched(h, store)
    watcher = Watcher(store, config, h.transport_for, h.provider_for, utc_now, emit=h.lines.append)
    await watcher.exits.ctl(record, "stop")
    await asyncio.sleep(1.5)  # the supervisor has ended and no longer rewrites state.json
    (Path(record.run_dir) / "state.json").write_bytes(content)
    await watcher.check("llama-ft")
    alerts = await store.open_alerts("llama-ft")
    assert set(alerts) == {"invalid_state"}
    assert expected in alerts["invalid_state"].message
    assert h.lines[-1].split()[1] == "invalid"
    await store.close()
    await h.pool.close()
