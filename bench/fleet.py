"""Fleet scale through the real `serve`: one watcher process, N runs, each its own fake instance.

    python -m bench.fleet [--quick] [--sizes 500,2000,5000] [--window 60]

The client is the real thing end to end: core.service.Service (APScheduler, one wait channel
per run, the store rescan, the outbox) over core.ssh's pool (host keys pinned) on a real SQLite
Store, the cadence set to the goal's one check per run per minute. The fake instances are one
asyncssh server in a child process (bench/fleet_server.py: a realistic ~2 KiB probe answer, a
`wait` that blocks for its timeout), so this process's CPU is the watcher's own.

Each N runs in a fresh process: a warm-up service (imports, caches), the idle service's RSS,
then N live runs stored and `serve` started on them, all overdue (what a restart after some
downtime sees): its first checks are counted, unreachable ones too. Then window A at the
steady cadence: CPU of this process (all threads: SQLite's too), of the fake server and of the
rest of the machine (it is shared), RSS per run above the idle service, every SSH exec by kind,
the event loop's lag, GC pauses, and each check's, probe exec's and commit's duration. Then
window B with bare `conn.run('true')` execs on the same connections beside the service (about
1,000 of them): every check's latency (Watcher.check: channel, exec, parse, rules, commit)
against a bare exec's, under the same load. Both windows last long enough for 1,000 checks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import asyncssh

from bench.common import fmt, goal, percentile, print_goals, table, write_result
from bench.fleet_probes import GcPauses, LoopLag, ReferenceWork, cpu_s, machine_cpu, spread
from bench.fleet_run import Fleet, paced_bare, until, warm_up

SIZES, QUICK_SIZES = (500, 2000, 5000), (20,)
GOAL_RUNS, CADENCE_S = 5000, 60.0
MIN_SAMPLES = 1000  # p99 means something only with this many
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


async def window(
    fleet: Fleet, seconds: float, server_pid: int, bare_rate: float = 0.0, gauge: bool = True
) -> dict[str, Any]:
    """`seconds` of the service at its cadence (with bare execs beside it at `bare_rate`/s):
    checks done, CPU of serve, of the fake server and of the rest of the machine, the loop's
    lag, GC pauses, and every check's, probe exec's, commit's and bare exec's duration."""
    checks0, counts0, lag = fleet.checks, Counter(fleet.counts), LoopLag()
    reference = ReferenceWork()
    hub = fleet.service.sessions
    requests0, sessions0 = Counter(hub.requests), Counter(hub.counts)
    fleet.timing(True)
    cpu0, server0, (busy0, all0) = time.process_time(), cpu_s(server_pid), machine_cpu()
    wall0 = time.perf_counter()
    lag.start()
    if gauge:  # not in the latency window: each batch holds the loop ~2 ms
        reference.start()
    with GcPauses() as pauses:
        if bare_rate > 0:
            bare, bare_errors = await paced_bare(fleet, bare_rate, seconds)
        else:
            await asyncio.sleep(seconds)
            bare, bare_errors = [], 0
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    reference_ms = reference.stop()
    cpu -= reference.cpu_s  # the gauge's own work is not serve's
    server, (busy, every) = cpu_s(server_pid) - server0, machine_cpu()
    busy, every = busy - busy0, every - all0
    checks, done = list(fleet.latencies), fleet.checks - checks0
    fleet.timing(False)
    execs = fleet.counts - counts0
    requests, sessions = hub.requests - requests0, hub.counts - sessions0
    cores = every / wall if wall else 1.0
    return {
        "seconds": round(wall, 1),
        "checks": done,
        "checks_per_s": done / wall,
        "cpu_pct": 100 * cpu / wall,
        "cpu_ms_per_check": 1000 * cpu / done if done else None,
        "reference_ms": reference_ms,
        # the fake instances' server, and everything else on the machine (other work)
        "server_cpu_pct": 100 * server / wall,
        "server_cpu_ms_per_check": 1000 * server / done if done else None,
        "other_cpu_pct": 100 * max(0.0, busy - cpu - reference.cpu_s - server) / wall,
        "machine_busy_pct": 100 * busy / every if every else None,
        "cores": round(cores, 1),
        "execs": dict(execs),
        # requests on the hosts' supervisor sessions (a probe there is no exec), and sessions
        # opened, failed, lost, or fallen back to an exec
        "session_requests": dict(requests),
        "sessions": {**dict(sessions), "live": hub.live()},
        "loop_lag": lag.stop(),
        "gc": pauses.summary(),
        "check": spread(checks),
        "probe_exec": spread(fleet.probes.values),
        "commit": spread(fleet.commits.values),
        "bare": spread(bare),
        "bare_errors": bare_errors,
        "_checks": checks,
        "_bare": bare,
    }


async def measure(
    tmp: Path,
    port: int,
    key: Path,
    n: int,
    window_s: float,
    cadence_s: float,
    samples: int,
    server_pid: int,
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
    cipher = fleet.cipher()
    # Windows are whole cadences: the restart's spread leaves the runs' checks bunched, and a
    # window that cuts a round in two sees fewer checks than the cadence makes.
    # window A: the service alone at its cadence: CPU, execs by kind, memory, latencies
    a = await window(fleet, _whole(window_s, cadence_s), server_pid)
    rss = rss_kib()
    # window B: bare execs on the same connections beside it (~1.1 x samples of them, a light
    # extra load), long enough for `samples` checks too (a small fleet checks few a second):
    # a check's latency against a bare exec's, under the same load
    span_s = _whole(max(window_s, 1.1 * samples * cadence_s / n), cadence_s)
    b = await window(fleet, span_s, server_pid, bare_rate=1.1 * samples / span_s, gauge=False)
    await fleet.close()
    a["cipher"] = cipher
    return summarise(n, cadence_s, started, first, start_s, rss - rss_idle, a, b)


def summarise(
    n: int,
    cadence_s: float,
    started: bool,
    first: list[str],
    start_s: float,
    rss_growth_kib: int,
    a: dict[str, Any],
    b: dict[str, Any],
) -> dict[str, Any]:
    checks, bare = b.pop("_checks"), b.pop("_bare")
    a.pop("_checks"), a.pop("_bare")
    bare_p99, check_p99 = percentile(bare, 99), percentile(checks, 99)
    done, per_check = a["checks"], a["cpu_ms_per_check"]
    return {
        "runs": n,
        "cadence_s": cadence_s,
        "window_s": a["seconds"],
        "start": {
            "all_first_checks": started,
            "first_checks": len(first),
            "unreachable_first_checks": sum(" unreachable " in line for line in first),
            "seconds": round(start_s, 1),
        },
        "checks": done,
        "checks_per_s": a["checks_per_s"],
        "cpu_pct": a["cpu_pct"],
        "cpu_ms_per_check": per_check,
        # what the goal's load costs: CPU per check at the cadence's rate. Not the measured
        # share alone: on a busy machine a starved process falls behind and "uses" less.
        "cpu_pct_at_cadence": per_check * n / cadence_s / 10 if per_check else None,
        "kept_up": a["checks_per_s"] >= 0.95 * n / cadence_s,
        "server_cpu_pct": a["server_cpu_pct"],
        # the fake server does the same work per check on every host: serve's CPU against it
        # is the figure that does not move with the host's speed (the goal's share of a core
        # does), as long as serve sends its requests alike (bursts cost the server less too)
        "cpu_vs_server": per_check / a["server_cpu_ms_per_check"]
        if per_check and a["server_cpu_ms_per_check"]
        else None,
        # serve's CPU per check in units of a fixed piece of work timed on this host
        "cpu_vs_reference": per_check / a["reference_ms"]
        if per_check and a["reference_ms"]
        else None,
        "other_cpu_pct": a["other_cpu_pct"],
        "loop_lag_p99_ms": a["loop_lag"]["p99_ms"],
        "loop_lag_max_ms": a["loop_lag"]["max_ms"],
        "cipher": a.get("cipher"),
        "rss_kib_per_run": rss_growth_kib / n,
        "execs": a["execs"],
        "execs_per_check": sum(a["execs"].values()) / done if done else None,
        "session_requests": a["session_requests"],
        "session_requests_per_check": sum(a["session_requests"].values()) / done if done else None,
        "latency_window_s": b["seconds"],
        "check_samples": len(checks),
        "check_p50_ms": _ms(percentile(checks, 50)),
        "check_p99_ms": _ms(check_p99),
        "bare_samples": len(bare),
        "bare_errors": b["bare_errors"],
        "bare_p50_ms": _ms(percentile(bare, 50)),
        "bare_p99_ms": _ms(bare_p99),
        "p99_vs_bare": check_p99 / bare_p99 if check_p99 and bare_p99 else None,
        "window_a": a,
        "window_b": b,
    }


def _whole(seconds: float, cadence_s: float) -> float:
    """`seconds` rounded up to whole cadences."""
    return cadence_s * math.ceil(seconds / cadence_s - 1e-9)


def measure_fresh(
    tmp: Path,
    port: int,
    key: Path,
    n: int,
    window_s: float,
    cadence_s: float,
    samples: int,
    server_pid: int,
) -> dict[str, Any]:
    """One fleet size in a fresh process: RSS growth is not hidden by memory an earlier, larger
    fleet freed (the allocator keeps it)."""
    raise_fd_limit()
    return asyncio.run(measure(tmp, port, key, n, window_s, cadence_s, samples, server_pid))


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
                        measure_fresh,
                        tmp,
                        port,
                        client_key,
                        n,
                        window_s,
                        cadence_s,
                        samples,
                        server.pid,
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
            f" while it kept {big['checks_per_s']:.1f} checks/s, beside the fake server's"
            f" {big['server_cpu_pct']:.0f} % and other work's {big['other_cpu_pct']:.0f} %"
            f" of a core; {fmt(big.get('cpu_vs_reference'), 1)} x a fixed reference work's CPU"
            f" ({fmt(big['window_a'].get('reference_ms'), 3)} ms on this host) and"
            f" {fmt(big.get('cpu_vs_server'), 2)} x the fake server's CPU per check, gauges of"
            " the host's speed measured in the same run)",
        ),
        goal(
            f"p99 check latency < {GOAL_P99_X:g} x a bare exec (>= {MIN_SAMPLES} samples each)",
            (big["p99_vs_bare"] or 99) < GOAL_P99_X
            and min(big["check_samples"], big["bare_samples"]) >= MIN_SAMPLES,
            f"{fmt(big['check_p99_ms'])} ms vs {fmt(big['bare_p99_ms'])} ms ="
            f" {fmt(big['p99_vs_bare'], 2)} x ({big['check_samples']} / {big['bare_samples']}"
            f" samples) at N={n}; the loop's lag p99 {fmt(big['loop_lag_p99_ms'])} ms,"
            f" max {fmt(big['loop_lag_max_ms'])} ms",
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
            f"{fmt(r['execs_per_check'], 2)}/{fmt(r['session_requests_per_check'], 2)}",
            f"{fmt(r['loop_lag_p99_ms'])}/{fmt(r['loop_lag_max_ms'])}",
            f"{r['server_cpu_pct']:.0f}/{r['other_cpu_pct']:.0f}",
        ]
        for r in results
    ]
    head = ["N", "checks/s", "cpu % at cadence", "check p50/p99 ms", "bare p50/p99 ms"]
    head += ["p99 x bare"]
    head += ["samples", "KiB/run", "unreachable 1st", "execs/session req per check"]
    head += ["loop lag p99/max ms", "fake server/other CPU %"]
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
