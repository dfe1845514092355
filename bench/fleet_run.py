"""The fleet bench's client side: N runs stored, the real `serve` (core.service.Service over
core.ssh's pool and a real SQLite Store) watching them, every check and probe exec timed.
bench/fleet.py measures it; bench/fleet_server.py is the fake instances it talks to."""

from __future__ import annotations

import asyncio
import gc
import io
import random
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.fleet_probes import Timings
from core.config import CadenceConfig, Config, RunConfig, WatcherConfig
from core.console import ConsoleNotifier
from core.gc_pace import GcPacer
from core.models import ExecResult, RunRecord
from core.ports import Interactive
from core.service import Service
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.store import Store

WARMUP_RUNS = 5


class Counting:
    """The run's SshTransport, counting each exec by kind (probe, wait, other) and session
    opened, and timing the probes' execs (a probe on the session is timed by the check)."""

    def __init__(self, inner: SshTransport, counts: Counter[str], probes: Timings) -> None:
        self.inner = inner
        self.label = inner.label
        self.counts = counts
        self.probes = probes

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
        lasting: bool = False,
    ) -> ExecResult:
        kind = next((k for k in ("probe", "wait", "ack", "ctl") if k in argv), "other")
        self.counts[kind] += 1
        work = self.inner.run(
            argv,
            timeout_s=timeout_s,
            stdin=stdin,
            max_output_bytes=max_output_bytes,
            lasting=lasting,
        )
        return await (self.probes.timed(work) if kind == "probe" else work)

    def open_process(
        self, argv: Sequence[str], *, open_timeout_s: float
    ) -> AbstractAsyncContextManager[Interactive]:
        """The supervisor session's long-lived process (serve's probes then go over it)."""
        self.counts["session_open"] += 1
        return self.inner.open_process(argv, open_timeout_s=open_timeout_s)

    async def put_tree(self, local_dir: Path, remote_dir: str) -> None:
        await self.inner.put_tree(local_dir, remote_dir)

    async def put_files(self, files: Sequence[tuple[Path, str]]) -> None:
        await self.inner.put_files(files)

    async def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        await self.inner.put_bytes(data, remote_path, mode=mode)

    async def close(self) -> None:
        await self.inner.close()


class Fleet:
    """N runs on the fake instances and the real serve watching them."""

    def __init__(self, tmp: Path, port: int, key: Path, n: int, cadence_s: float, tag: str):
        self.n, self.port, self.key = n, port, key
        self.names = [f"{tag}-{i:05d}" for i in range(n)]
        self.db = tmp / f"fleet-{tag}-{n}.db"
        self.pins = tmp / f"pins-{tag}"
        runs = [
            RunConfig(name=name, run_dir=f"/w/{name}", command="python train.py", host="127.0.0.1")
            for name in self.names
        ]
        self.config = Config(
            watcher=WatcherConfig(state_dir=tmp / f"state-{tag}"),
            cadence=CadenceConfig(early=[cadence_s], cruise=cadence_s, alert=cadence_s),
            runs=runs,
        )
        self.options = SshOptions(connect_timeout_s=60.0)
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.probes, self.commits = Timings(), Timings()
        self.first_lines: dict[str, str] = {}
        self.checks = 0

    async def open(self) -> None:
        self.store = await Store.open(self.db)
        now = datetime.now(UTC)
        overdue = now - timedelta(minutes=10)  # serve was down: every run is due at once
        for name in self.names:
            await self.store.upsert_run(
                RunRecord(
                    name=name,
                    run_dir=f"/w/{name}",
                    launched_at=now - timedelta(hours=1),
                    status="running",
                    attempt=1,
                    ssh_host="127.0.0.1",
                    ssh_port=self.port,
                    ssh_user=name,
                    next_check_at=overdue,
                )
            )
        self.pool = SshPool(self.pins, options=self.options)
        self.transports: dict[str, Counting] = {}
        self.service = Service(
            self.config,
            self.store,
            ConsoleNotifier(io.StringIO()),
            None,
            self.transport_for,
            lambda: datetime.now(UTC),
            emit=self.heard,
            heartbeat_s=30.0,
            gc_pacer=GcPacer(),  # as `sleepwatch serve` runs (core.root)
        )
        self._time_checks()

    def _time_checks(self) -> None:
        """Every check's latency (Watcher.check: channel, exec, parse, rules, commit), and the
        commit's own share of it."""
        timed = self.service.watcher.check

        async def check(name: str) -> float | None:
            start = time.perf_counter()
            try:
                return await timed(name)
            finally:
                self.latencies.append(time.perf_counter() - start)
                self.checks += 1

        self.service.watcher.check = check  # type: ignore[method-assign]
        self.store.commit_check = self.commits.wrap(self.store.commit_check)  # type: ignore[method-assign]

    def timing(self, on: bool) -> None:
        self.probes.on = self.commits.on = on
        if on:
            self.probes.values.clear()
            self.commits.values.clear()
            self.latencies.clear()

    def transport_for(self, record: RunRecord) -> Counting:
        name = record.name
        if name not in self.transports:
            target = SshTarget("127.0.0.1", self.port, name, self.key)
            inner = SshTransport(self.pool, target, self.options)
            self.transports[name] = Counting(inner, self.counts, self.probes)
        return self.transports[name]

    def heard(self, line: str) -> None:
        name = line.rsplit(" ", 1)[-1]
        self.first_lines.setdefault(name, line)

    async def bare(self, name: str) -> None:
        target = SshTarget("127.0.0.1", self.port, name, self.key)
        async with self.pool.channel(target, 60.0) as conn:
            await conn.run("true", check=True)

    def cipher(self) -> str | None:
        """The cipher the pool's connections speak (the first live one's)."""
        for lanes in (slot.lanes for slot in self.pool._slots.values()):
            for lane in lanes.lanes:
                return str(lane.conn.get_extra_info("send_cipher"))
        return None

    async def close(self) -> None:
        await self.service.stop()
        gc.unfreeze()
        await self.pool.close()
        await self.store.close()


async def until(condition: Any, timeout_s: float) -> bool:
    give_up = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > give_up:
            return False
        await asyncio.sleep(0.2)
    return True


async def paced_bare(fleet: Fleet, rate: float, seconds: float) -> tuple[list[float], int]:
    """Bare execs at `rate`/s on random runs' connections for `seconds` (beside the service)."""
    latencies: list[float] = []
    errors = 0

    async def one(name: str) -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            await fleet.bare(name)
        except Exception:
            errors += 1
            return
        latencies.append(time.perf_counter() - start)

    tasks = []
    t0 = time.perf_counter()
    for i in range(max(1, int(rate * seconds))):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(random.choice(fleet.names))))
    await asyncio.gather(*tasks)
    return latencies, errors


async def warm_up(tmp: Path, port: int, key: Path) -> None:
    fleet = Fleet(tmp, port, key, WARMUP_RUNS, 5.0, "warm")
    await fleet.open()
    await fleet.service.start()
    await until(lambda: len(fleet.first_lines) >= WARMUP_RUNS, 60)
    await fleet.close()
