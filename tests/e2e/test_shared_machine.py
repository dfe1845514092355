"""Issue 16, "runs that share a machine": eight runs of a sweep on one SSH endpoint (one sshd,
one user, stock MaxSessions 10) through the serve composition. Every run's probes and watch go
on the endpoint's one supervisor session (no wait channel per run any more), and every run is
torn down within seconds of its trainer's exit; its `done` line is stamped after the exit, and
the terminal messages go out in the order the runs ended."""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig, WatcherConfig
from core.launch import launch, plan_launch
from core.models import InstanceInfo, InstanceState, MessageKind, OutboundMessage, RunRecord
from core.providers import RecordingProvider
from core.runtime import utc_now
from core.service import Service
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.store import Store

if TYPE_CHECKING:
    from tests.fixtures.sshd import SshdServer

pytest_plugins = ["tests.fixtures.sshd"]

RUNS = 8
STAGGER_S = 1.2
TEARDOWN_WITHIN_S = 30.0  # the first check after launch is followed by none for a minute

TRAINER = """
import sys, time
seconds = float(sys.argv[1])
start = time.time()
step = 0
while time.time() - start < seconds:
    step += 1
    print(f"step {step}/1000", flush=True)
    time.sleep(0.2)
print("done", flush=True)
"""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    async def deliver(self, message: OutboundMessage) -> None:
        self.messages.append(message)


def sweep(tmp_path: Path, sshd: SshdServer) -> Config:
    trainer = tmp_path / "train.py"
    trainer.write_text(TRAINER)
    runs = [
        RunConfig(
            name=f"sweep-{i}",
            instance_id=str(5000 + i),
            user=sshd.user,
            key=sshd.key_path,
            run_dir=str(tmp_path / "runs" / f"sweep-{i}"),
            command=f"{sys.executable} {trainer} {4 + STAGGER_S * i}",
            env={"PYTHONUNBUFFERED": "1"},
            heartbeat_s=0.5,
        )
        for i in range(RUNS)
    ]
    return Config(
        watcher=WatcherConfig(
            state_dir=tmp_path / "state",
            python=sys.executable,
            remote_root=str(tmp_path / "remote"),
            wait_timeout=60.0,
        ),
        # after the first check, the next is a minute away: only the wait channel is faster
        cadence=CadenceConfig(early=["1m"], cruise="30m"),
        thresholds=ThresholdsConfig(stall_after=60),
        runs=runs,
    )


async def test_eight_runs_on_one_endpoint_are_each_torn_down_within_seconds_of_their_exit(
    tmp_path: Path, sshd: SshdServer
) -> None:
    config = sweep(tmp_path, sshd)
    provider = RecordingProvider(
        [
            InstanceInfo(
                id=run.instance_id or "",
                state=InstanceState.RUNNING,
                ssh_host=sshd.host,
                ssh_port=sshd.port,
                dph_total=1.0,
            )
            for run in config.runs
        ]
    )
    pool = SshPool(tmp_path / "state" / "known_hosts")  # stock limits

    def transport_for(record: RunRecord) -> SshTransport:
        assert record.ssh_host is not None and record.ssh_port is not None
        user = record.ssh_user or "root"
        target = SshTarget(record.ssh_host, record.ssh_port, user, sshd.key_path)
        return SshTransport(pool, target, SshOptions())

    inbox, lines = Inbox(), []
    async with AsyncExitStack() as stack:
        store = await Store.open(tmp_path / "state" / "db.sqlite3")
        stack.push_async_callback(store.close)
        stack.push_async_callback(pool.close)

        async def launched(run: RunConfig) -> None:
            plan = await plan_launch(run, config, provider, utc_now)
            await launch(plan, run, config, store, transport_for(plan.record), provider)

        await asyncio.gather(*(launched(run) for run in config.runs))
        service = Service(
            config,
            store,
            inbox,
            lambda r: provider,
            transport_for,
            utc_now,
            emit=lines.append,
            min_gap_s=0,
        )
        stack.push_async_callback(service.stop)
        await service.start()
        for run in config.runs:
            await asyncio.wait_for(service.finished[run.name].wait(), 120)
        assert await service.drain_outbox()
        records = [await store.get_run(run.name) for run in config.runs]
        hub = service.sessions
        assert hub is not None
        sessions = (hub.counts["opened"], hub.counts["lost"], hub.counts["fallback"])
        watches, changes = hub.requests["watch"], hub.events["changed"]

    ended: list[tuple[datetime, str]] = []
    for record in records:
        assert record is not None and record.status == "done" and not record.live
        assert record.ended_at is not None and record.torn_down_at is not None
        assert (record.torn_down_at - record.ended_at).total_seconds() < TEARDOWN_WITHIN_S
        done_line = next(line for line in reversed(lines) if line.endswith(f" {record.name}"))
        stamped = datetime.fromisoformat(done_line.split()[0])
        assert done_line.split()[1] == "done"
        assert stamped >= record.ended_at.replace(microsecond=0)  # after the exit, not before
        ended.append((record.ended_at, record.name))
    assert not [line for line in lines if " unreachable " in line]  # no probe timed out
    assert [c[1] for c in provider.calls("destroy")].count("5000") == 1
    # one session carried every run: each run's watch on it, each end pushed on it, no exec
    # fallback (the eight runs' wait execs used to hold eight channels for minutes)
    assert sessions == (1, 0, 0) and watches >= RUNS and changes >= RUNS
    terminals = [m.run for m in inbox.messages if m.kind is MessageKind.TERMINAL]
    assert terminals == [name for _, name in sorted(ended)]
