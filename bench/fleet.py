"""Fleet scale through the real `serve`: one watcher process, N runs, each its own fake instance.

    python -m bench.fleet [--quick] [--sizes 500,2000,5000] [--window 60]

The client is the real thing end to end: core.service.Service (APScheduler, one wait channel
per run, the store rescan, the outbox) over core.ssh's pool (host keys pinned) on a real SQLite
Store, the cadence set to the goal's one check per run per minute. The fake instances are one
asyncssh server in a child process (bench/fleet_server.py: a realistic ~2 KiB probe answer, a
`wait` that blocks for its timeout), so this process's CPU is the watcher's own.

Each N runs in a fresh process: a warm-up service (imports, caches), the idle service's RSS,
then N live runs stored and `serve` started on them, all overdue (what a restart after some
downtime sees): its first checks are counted, unreachable ones too. Then a window at the
steady cadence: CPU share of this process (all threads: SQLite's too), RSS per run above the
idle service, every SSH exec by kind (probe, wait, other). Then a second window with bare
`conn.run('true')` execs on the same connections beside the service, at least as many a second
as checks and long enough for 1,000 samples of each: every check's latency (Watcher.check:
channel, exec, parse, rules, commit) against a bare exec's, under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh

from bench.common import fmt, goal, percentile, print_goals, table, write_result
from core.config import CadenceConfig, Config, RunConfig, WatcherConfig
from core.console import ConsoleNotifier
from core.models import ExecResult, RunRecord
from core.service import Service
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.store import Store

SIZES, QUICK_SIZES = (500, 2000, 5000), (20,)
GOAL_RUNS, CADENCE_S = 5000, 60.0
MIN_SAMPLES = 1000  # p99 means something only with this many
WARMUP_RUNS = 5
GOAL_CPU_PCT, GOAL_P99_X, GOAL_KIB = 25.0, 3.0, 150.0


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Counting:
    """The run's SshTransport, counting each exec by kind (probe, wait, other)."""

    def __init__(self, inner: SshTransport, counts: Counter[str]) -> None:
        self.inner = inner
        self.label = inner.label
        self.counts = counts

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
        return await self.inner.run(
            argv,
            timeout_s=timeout_s,
            stdin=stdin,
            max_output_bytes=max_output_bytes,
            lasting=lasting,
        )

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
        )
        timed = self.service.watcher.check

        async def check(name: str) -> float | None:
            start = time.perf_counter()
            try:
                return await timed(name)
            finally:
                self.latencies.append(time.perf_counter() - start)
                self.checks += 1

        self.service.watcher.check = check  # type: ignore[method-assign]

    def transport_for(self, record: RunRecord) -> Counting:
        name = record.name
        if name not in self.transports:
            target = SshTarget("127.0.0.1", self.port, name, self.key)
            inner = SshTransport(self.pool, target, self.options)
            self.transports[name] = Counting(inner, self.counts)
        return self.transports[name]

    def heard(self, line: str) -> None:
        name = line.rsplit(" ", 1)[-1]
        self.first_lines.setdefault(name, line)

    async def bare(self, name: str) -> None:
        target = SshTarget("127.0.0.1", self.port, name, self.key)
        async with self.pool.channel(target, 60.0) as conn:
            await conn.run("true", check=True)

    async def close(self) -> None:
        await self.service.stop()
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


async def measure(
    tmp: Path, port: int, key: Path, n: int, window_s: float, cadence_s: float, samples: int
) -> dict[str, Any]:
    await warm_up(tmp, port, key)
    rss_idle = rss_kib()
    fleet = Fleet(tmp, port, key, n, cadence_s, "run")
    await fleet.open()
    t0 = time.perf_counter()
    await fleet.service.start()
    started = await until(lambda: len(fleet.first_lines) >= n, 60 + 3 * n / 50)
    start_s = time.perf_counter() - t0
    first = list(fleet.first_lines.values())
    unreachable_first = sum(" unreachable " in line for line in first)
    # window A: the service alone at its cadence: CPU share, execs by kind, memory
    checks0, counts0 = fleet.checks, Counter(fleet.counts)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(window_s)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = fleet.checks - checks0
    execs = fleet.counts - counts0
    rss = rss_kib()
    # window B: bare execs on the same connections beside it, at the checks' rate or more,
    # until both have enough samples: the two latencies under the same load
    fleet.latencies.clear()
    b_s = max(window_s, 1.1 * samples * cadence_s / n)
    bare, bare_errors = await paced_bare(fleet, max(n / cadence_s, samples / b_s), b_s)
    checks = list(fleet.latencies)
    bare_p99, check_p99 = percentile(bare, 99), percentile(checks, 99)
    await fleet.close()
    return {
        "runs": n,
        "cadence_s": cadence_s,
        "window_s": round(wall, 1),
        "start": {
            "all_first_checks": started,
            "first_checks": len(first),
            "unreachable_first_checks": unreachable_first,
            "seconds": round(start_s, 1),
        },
        "checks": done,
        "checks_per_s": done / wall,
        "cpu_pct": 100 * cpu / wall,
        "cpu_ms_per_check": 1000 * cpu / done if done else None,
        # what the goal's load costs: CPU per check at the cadence's rate. Not the measured
        # share alone: on a busy machine a starved process falls behind and "uses" less.
        "cpu_pct_at_cadence": 100 * cpu / done * n / cadence_s if done else None,
        "kept_up": done / wall >= 0.95 * n / cadence_s,
        "rss_kib_per_run": (rss - rss_idle) / n,
        "execs": dict(execs),
        "execs_per_check": sum(execs.values()) / done if done else None,
        "latency_window_s": round(b_s, 1),
        "check_samples": len(checks),
        "check_p50_ms": _ms(percentile(checks, 50)),
        "check_p99_ms": _ms(check_p99),
        "bare_samples": len(bare),
        "bare_errors": bare_errors,
        "bare_p50_ms": _ms(percentile(bare, 50)),
        "bare_p99_ms": _ms(bare_p99),
        "p99_vs_bare": check_p99 / bare_p99 if check_p99 and bare_p99 else None,
    }


def measure_fresh(
    tmp: Path, port: int, key: Path, n: int, window_s: float, cadence_s: float, samples: int
) -> dict[str, Any]:
    """One fleet size in a fresh process: RSS growth is not hidden by memory an earlier, larger
    fleet freed (the allocator keeps it)."""
    raise_fd_limit()
    return asyncio.run(measure(tmp, port, key, n, window_s, cadence_s, samples))


def run_all(
    sizes: Sequence[int], window_s: float, cadence_s: float, samples: int = MIN_SAMPLES
) -> list[dict[str, Any]]:
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="sw-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        host_key, client_key = tmp / "host_key", tmp / "client_key"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(host_key)
        client = asyncssh.generate_private_key("ssh-ed25519")
        client.write_private_key(client_key)
        client.write_public_key(tmp / "authorized_keys")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.fleet_server",
                str(host_key),
                str(tmp / "authorized_keys"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            spawn = multiprocessing.get_context("spawn")
            results = []
            for n in sizes:
                with ProcessPoolExecutor(1, mp_context=spawn) as fresh:
                    job = fresh.submit(
                        measure_fresh, tmp, port, client_key, n, window_s, cadence_s, samples
                    )
                    results.append(job.result())
            return results
        finally:
            with contextlib.suppress(Exception):
                assert server.stdin is not None
                server.stdin.close()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if server.stdout is not None:
                server.stdout.close()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def goals_for(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    big = max(results, key=lambda r: r["runs"])
    n = big["runs"]
    return [
        goal(
            f"{GOAL_RUNS} runs at one check/run/min: < {GOAL_CPU_PCT:g} % of one core",
            n >= GOAL_RUNS and big["cpu_pct_at_cadence"] < GOAL_CPU_PCT,
            f"{big['cpu_pct_at_cadence']:.1f} % at N={n} ({fmt(big['cpu_ms_per_check'], 2)} ms"
            f" per check x {n / big['cadence_s']:.1f} checks/s; measured {big['cpu_pct']:.1f} %"
            f" while it kept {big['checks_per_s']:.1f} checks/s on a shared machine)",
        ),
        goal(
            f"p99 check latency < {GOAL_P99_X:g} x a bare exec (>= {MIN_SAMPLES} samples each)",
            (big["p99_vs_bare"] or 99) < GOAL_P99_X
            and min(big["check_samples"], big["bare_samples"]) >= MIN_SAMPLES,
            f"{fmt(big['check_p99_ms'])} ms vs {fmt(big['bare_p99_ms'])} ms ="
            f" {fmt(big['p99_vs_bare'], 2)} x ({big['check_samples']} / {big['bare_samples']}"
            f" samples) at N={n}",
        ),
        goal(
            f"memory < {GOAL_KIB:g} KiB per run above the idle service",
            big["rss_kib_per_run"] < GOAL_KIB,
            f"{big['rss_kib_per_run']:.0f} KiB at N={n}",
        ),
        goal(
            "0 unreachable first checks after a restart",
            all(r["start"]["unreachable_first_checks"] == 0 for r in results)
            and all(r["start"]["all_first_checks"] for r in results),
            ", ".join(
                f"{r['start']['unreachable_first_checks']} of {r['start']['first_checks']}"
                f" at N={r['runs']} ({r['start']['seconds']:.0f} s)"
                for r in results
            ),
        ),
    ]


def report(results: list[dict[str, Any]]) -> None:
    rows = [
        [
            str(r["runs"]),
            f"{fmt(r['checks_per_s'])} of {fmt(r['runs'] / r['cadence_s'])}",
            fmt(r["cpu_pct_at_cadence"]),
            f"{fmt(r['check_p50_ms'])} / {fmt(r['check_p99_ms'])}",
            f"{fmt(r['bare_p50_ms'])} / {fmt(r['bare_p99_ms'])}",
            fmt(r["p99_vs_bare"], 2),
            f"{r['check_samples']}/{r['bare_samples']}",
            f"{r['rss_kib_per_run']:.0f}",
            f"{r['start']['unreachable_first_checks']}/{r['start']['first_checks']}",
            fmt(r["execs_per_check"], 2),
        ]
        for r in results
    ]
    head = ["N", "checks/s", "cpu % at cadence", "check p50/p99 ms", "bare p50/p99 ms"]
    head += ["p99 x bare"]
    head += ["samples", "KiB/run", "unreachable 1st", "execs/check"]
    print(table(head, rows))


def main(
    quick: bool = False,
    sizes: Sequence[int] | None = None,
    *,
    write: bool = True,
    window_s: float | None = None,
    samples: int | None = None,
) -> dict[str, Any]:
    sizes = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    window_s = window_s or (10.0 if quick else 60.0)
    cadence_s = 5.0 if quick else CADENCE_S
    started = time.perf_counter()
    samples = samples or (50 if quick else MIN_SAMPLES)
    results = run_all(sizes, window_s, cadence_s, samples)
    elapsed = time.perf_counter() - started
    print(
        f"\n== fleet: the real serve over asyncssh on 127.0.0.1, N = "
        f"{', '.join(map(str, sizes))}, a check every {cadence_s:g} s ({elapsed:.1f} s) =="
    )
    report(results)
    goals = goals_for(results)
    print("\ngoals:")
    print_goals(goals)
    doc = {
        "sizes": list(sizes),
        "window_s": window_s,
        "cadence_s": cadence_s,
        "cpus": os.cpu_count(),
        "elapsed_s": round(elapsed, 1),
        "results": results,
        "goals": goals,
    }
    if write:
        print(f"wrote {write_result('fleet', doc, quick=quick)}")
    return doc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", help="comma-separated run counts, e.g. 500,2000,5000")
    parser.add_argument("--window", type=float, help="seconds of steady cadence measured")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    main(args.quick, sizes, window_s=args.window)
