"""Fleet scale over real SSH on loopback: one watcher process, N runs, each its own connection.

    python -m bench.fleet [--quick] [--sizes 50,200,500]

Client side is the real thing: core.ssh.SshPool/SshTransport (host keys pinned in a file) and
`Watcher.check` with a real SQLite Store (probe exec → parse_probe → assess → status line →
commit). The servers are asyncssh in a child process (bench/fleet_server.py), so this
process's CPU time is the watcher's own. Each N runs in a fresh process, in this order:
connect all and check each once (memory per run), bare `conn.run('true')` paced at the offered
rate (the floor), checks at the same rate, then checks as fast as they go (sustained/s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh

from bench.common import fmt, goal, percentile, print_goals, table, write_result
from core.config import Config, RunConfig
from core.models import RunRecord
from core.ssh import SshPool, SshTarget, SshTransport
from core.store import Store
from core.watcher import Watcher

SIZES, QUICK_SIZES = (50, 200, 500), (10, 30)
GOAL_RUNS, GOAL_PERIOD_S = 500, 60.0
WARMUP_RUNS = 5
MIN_RATE = 5.0  # checks/s offered at least, so small fleets give enough latency samples


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


def child_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Fleet:
    def __init__(self, tmp: Path, port: int, key: Path, n: int, tag: str = "run") -> None:
        self.n = n
        self.names = [f"{tag}-{i:04d}" for i in range(n)]
        runs = [
            RunConfig(
                name=name,
                run_dir=f"/w/{name}",
                command="python train.py",
                host="127.0.0.1",
                port=port,
                user=name,
                key=key,
            )
            for name in self.names
        ]
        self.config = Config(runs=runs)
        self.pool = SshPool(tmp / "pins")
        self.targets = {name: SshTarget("127.0.0.1", port, name, key) for name in self.names}
        self.transports = {
            name: SshTransport(self.pool, t, _options()) for name, t in self.targets.items()
        }
        self.db = tmp / f"fleet-{tag}-{n}.db"

    async def open(self) -> None:
        self.store = await Store.open(self.db)
        now = datetime.now(UTC)
        for name in self.names:
            await self.store.upsert_run(RunRecord(name=name, run_dir=f"/w/{name}", launched_at=now))
        self.watcher = Watcher(
            self.store,
            self.config,
            lambda r: self.transports[r.name],
            None,
            lambda: datetime.now(UTC),
            emit=lambda line: None,
        )

    async def close(self) -> None:
        await self.pool.close()
        await self.store.close()

    async def check(self, name: str) -> None:
        await self.watcher.check(name)

    async def bare(self, name: str) -> None:
        async with self.pool.channel(self.targets[name], 30.0) as conn:
            await conn.run("true", check=True)


def _options() -> Any:
    from core.ssh import SshOptions

    return SshOptions(connect_timeout_s=60.0)


async def gather_limited(calls: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def paced(
    names: list[str], op: Callable[[str], Awaitable[None]], rate: float, seconds: float
) -> dict[str, Any]:
    """Start one op every 1/rate s, round-robin over the runs; latency of each, CPU per op."""
    latencies: list[float] = []
    errors = 0

    async def timed(name: str) -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            await op(name)
        except Exception:
            errors += 1
            return
        latencies.append(time.perf_counter() - start)

    total = max(1, int(rate * seconds))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    tasks = []
    for i in range(total):
        delay = wall0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(names[i % len(names)])))
    await asyncio.gather(*tasks)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _stats(latencies, errors, cpu, wall)


async def flat_out(
    names: list[str], op: Callable[[str], Awaitable[None]], seconds: float
) -> dict[str, Any]:
    """Every run checks back to back (one in flight per run) for `seconds`."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def loop(name: str) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            try:
                await op(name)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop(n) for n in names))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return _stats(latencies, errors, cpu, wall)


def _stats(latencies: list[float], errors: int, cpu: float, wall: float) -> dict[str, Any]:
    done = len(latencies)
    return {
        "ops": done,
        "errors": errors,
        "wall_s": round(wall, 2),
        "ops_per_s": done / wall if wall else None,
        "cpu_ms_per_op": 1000 * cpu / done if done else None,
        "cpu_share_pct": 100 * cpu / wall if wall else None,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


async def measure(
    tmp: Path, port: int, key: Path, n: int, phase_s: float, server_pid: int
) -> dict[str, Any]:
    warm = Fleet(tmp, port, key, WARMUP_RUNS, tag="warm")  # imports and first-use caches
    await warm.open()
    await gather_limited([lambda name=name: warm.check(name) for name in warm.names], 50)
    await warm.close()
    rss0 = rss_kib()
    fleet = Fleet(tmp, port, key, n)
    await fleet.open()
    t0 = time.perf_counter()
    await gather_limited([lambda name=name: fleet.check(name) for name in fleet.names], 50)
    connect_s = time.perf_counter() - t0
    rss1 = rss_kib()
    rate = max(n / GOAL_PERIOD_S, MIN_RATE)
    bare = await paced(fleet.names, fleet.bare, rate, phase_s)
    checks = await paced(fleet.names, fleet.check, rate, phase_s)
    server0 = child_cpu_s(server_pid)
    sustained = await flat_out(fleet.names, fleet.check, phase_s)
    server_share = 100 * (child_cpu_s(server_pid) - server0) / sustained["wall_s"]
    await fleet.close()
    return {
        "runs": n,
        "offered_rate_per_s": rate,
        "connect_and_first_check_s": round(connect_s, 2),
        "rss_kib_per_run": (rss1 - rss0) / n,
        "bare": bare,
        "checks": checks,
        "sustained": sustained,
        "server_cpu_share_pct_sustained": server_share,
        "p99_vs_bare": (checks["p99_ms"] / bare["p99_ms"]) if bare["p99_ms"] else None,
        "cpu_vs_bare": (checks["cpu_ms_per_op"] / bare["cpu_ms_per_op"])
        if bare["cpu_ms_per_op"]
        else None,
    }


def measure_fresh(tmp: Path, port: int, key: Path, n: int, phase_s: float, pid: int) -> Any:
    """One fleet size in a fresh process: RSS growth is not hidden by memory an earlier, larger
    fleet freed (the allocator keeps it)."""
    raise_fd_limit()
    return asyncio.run(measure(tmp, port, key, n, phase_s, pid))


def run_all(sizes: tuple[int, ...], phase_s: float) -> list[dict[str, Any]]:
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
                    job = fresh.submit(measure_fresh, tmp, port, client_key, n, phase_s, server.pid)
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


def goals_for(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    big = max(results, key=lambda r: r["runs"])
    c = big["checks"]
    need = GOAL_RUNS / GOAL_PERIOD_S
    cpu_at_goal = need * c["cpu_ms_per_op"] / 10 if c["cpu_ms_per_op"] else None  # % of a core
    sus = big["sustained"]["ops_per_s"] or 0
    return [
        goal(
            f"{GOAL_RUNS} runs at 1 check/run/min on one core (needs {need:.1f}/s)",
            sus >= need and (cpu_at_goal or 100) < 100,
            f"sustained {sus:.1f} checks/s at N={big['runs']};"
            f" the goal's load takes {fmt(cpu_at_goal)} % of a core",
        ),
        goal(
            "CPU per check < 5 ms",
            (c["cpu_ms_per_op"] or 99) < 5,
            f"{fmt(c['cpu_ms_per_op'], 2)} ms at N={big['runs']}",
        ),
        goal(
            "p99 check latency < 3 x bare exec",
            (big["p99_vs_bare"] or 99) < 3,
            f"{fmt(c['p99_ms'])} ms vs {fmt(big['bare']['p99_ms'])} ms"
            f" = {fmt(big['p99_vs_bare'], 2)} x",
        ),
        goal(
            "memory per run < 300 KiB",
            big["rss_kib_per_run"] < 300,
            f"{big['rss_kib_per_run']:.0f} KiB at N={big['runs']}",
        ),
    ]


def report(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        b, c, s = r["bare"], r["checks"], r["sustained"]
        rows.append(
            [
                str(r["runs"]),
                fmt(r["offered_rate_per_s"]),
                fmt(s["ops_per_s"]),
                fmt(c["cpu_ms_per_op"], 2),
                fmt(b["cpu_ms_per_op"], 2),
                fmt(r["cpu_vs_bare"], 2),
                fmt(c["p50_ms"]),
                fmt(c["p99_ms"]),
                fmt(b["p50_ms"]),
                fmt(b["p99_ms"]),
                fmt(r["p99_vs_bare"], 2),
                f"{r['rss_kib_per_run']:.0f}",
                fmt(r["server_cpu_share_pct_sustained"], 0),
                str(c["errors"] + s["errors"]),
            ]
        )
    print(
        table(
            [
                "N",
                "rate/s",
                "sustained/s",
                "cpu ms/check",
                "cpu ms/bare",
                "x bare",
                "p50 ms",
                "p99 ms",
                "bare p50",
                "bare p99",
                "p99 x bare",
                "KiB/run",
                "server cpu %",
                "errors",
            ],
            rows,
        )
    )


def main(
    quick: bool = False, sizes: tuple[int, ...] | None = None, *, write: bool = True
) -> dict[str, Any]:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    phase_s = 3.0 if quick else 12.0
    started = time.perf_counter()
    results = run_all(sizes, phase_s)
    elapsed = time.perf_counter() - started
    print(
        f"\n== fleet: real asyncssh on 127.0.0.1, N = {', '.join(map(str, sizes))}"
        f" ({elapsed:.1f} s) =="
    )
    report(results)
    goals = goals_for(results)
    print("\ngoals:")
    print_goals(goals)
    doc = {
        "sizes": list(sizes),
        "phase_s": phase_s,
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
    parser.add_argument("--sizes", help="comma-separated run counts, e.g. 50,200,500")
    args = parser.parse_args()
    main(args.quick, tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None)
