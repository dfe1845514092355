"""The fleet bench's SSH side, in its own process so the watcher's CPU is measured alone.

    python -m bench.fleet_server HOST_KEY AUTHORIZED_KEYS

One asyncssh server on 127.0.0.1 (any user name, the bench's client key): a command naming
`probe` gets a realistic probe JSON with fresh timestamps, `wait` blocks for its `--timeout`
and answers "timeout" (a healthy trainer: no news), `session` speaks the supervisor session's
JSON lines (supervisor/session.py: probes answered, watches that only time out, heartbeats),
anything else (`true`) exits 0.
Prints the port on stdout, serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncssh

STARTED = datetime.now(UTC) - timedelta(hours=3)
LOG_LINE = " 41%|████      | {step}/90000 [3:02:11<4:21:33,  3.46it/s, loss=1.873, lr=2e-05]\n"
_counter = itertools.count()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def probe_doc(user: str) -> dict[str, Any]:
    """One `supervisor probe` answer: state, ~2 KiB of new log, a 20-line tail, one GPU."""
    now = datetime.now(UTC)
    step = 40000 + next(_counter)
    gpu = {
        "index": 0,
        "util_pct": 97.0,
        "mem_used_mb": 73011.0,
        "mem_total_mb": 81559.0,
        "mem_util_pct": 41.0,
        "temp_c": 61.0,
        "power_w": 612.0,
        "power_limit_w": 700.0,
        "throttle": ["sw_power_cap"],
        "ecc_uncorrected": 0,
    }
    beat = _iso(now - timedelta(seconds=5))
    text = "".join(LOG_LINE.format(step=step - i) for i in range(20, 0, -1))
    state = {
        "schema": 1,
        "run": user,
        "status": "running",
        "outcome": None,
        "attempt": 1,
        "max_attempts": 3,
        "step": step,
        "total_steps": 90000,
        "last_step_at": _iso(now - timedelta(seconds=2)),
        "last_output_at": _iso(now - timedelta(seconds=1)),
        "heartbeat_at": beat,
        "started_at": _iso(STARTED),
        "ended_at": None,
        "throughput": 3.46,
        "gpus": [gpu],
        "fixes": [],
        "last_failure": None,
        "knobs": {"eval_batch_size": 64},
        "pid": 4242,
        "trainer_pid": 4243,
        # what a supervisor of today writes besides (NVML, the process tree, recent medians)
        "gpu_status": {"status": "ok", "source": "nvml", "error": None},
        "gpu_recent": {"readings": 20, "span_s": 285.0, "gpus": [gpu]},
        "activity": {
            "cpu_s": 81234.5,
            "io_bytes": 912345678,
            "pids": 7,
            "at": beat,
            "last_cpu_at": beat,
            "last_io_at": beat,
        },
        "last_activity_at": beat,
    }
    offset = step * 100
    return {
        "probe": 1,
        "at": _iso(now),
        "state": state,
        "state_error": None,
        "log": {
            "attempt": 1,
            "offset": offset,
            "next_offset": offset + len(text.encode()),
            "size": offset + len(text.encode()),
            "skipped": 0,
            "text": text,
        },
        "tail": text.splitlines(),
        "gpus": [gpu],
        "disk_free_mb": 51234.5,
    }


def wait_timeout_s(command: str) -> float:
    words = command.split()
    try:
        return float(words[words.index("--timeout") + 1])
    except (ValueError, IndexError):
        return 300.0


def _heartbeat_s(command: str) -> float:
    """The `--heartbeat` the watcher asked for (15 s, the supervisor's default, without one)."""
    words = command.split()
    try:
        return max(0.05, float(words[words.index("--heartbeat") + 1]))
    except (ValueError, IndexError):
        return 15.0


async def session(process: asyncssh.SSHServerProcess[str], heartbeat_s: float = 15.0) -> None:
    """A healthy instance's `supervisor session`: every probe answered, no event but timeouts,
    a heartbeat only after `heartbeat_s` without a line, as supervisor/session.py beats (a
    timer, not a wait_for per line: this one process stands in for thousands of instances, its
    CPU is kept small)."""
    user = process.get_extra_info("username")
    hello = {"session": 1, "heartbeat_s": heartbeat_s}
    loop = asyncio.get_running_loop()
    wrote_at = [loop.time()]
    timers: list[asyncio.TimerHandle] = []

    def write(line: str) -> None:
        process.stdout.write(line)
        wrote_at[0] = loop.time()

    def beat() -> None:
        if loop.time() - wrote_at[0] >= heartbeat_s - 0.001:  # a timer may fire a hair early
            write(f'{{"heartbeat": {time.time():.3f}}}\n')
        timers[0] = loop.call_at(wrote_at[0] + heartbeat_s, beat)

    def timeout(run_dir: str) -> None:
        state = {"status": "running", "attempt": 1}
        write(json.dumps({"event": "timeout", "run_dir": run_dir, "state": state}) + "\n")

    write("\n@@sleepwatch-answer-v1@@\n" + json.dumps(hello) + "\n")
    timers.append(loop.call_later(heartbeat_s, beat))
    try:
        while line := await process.stdin.readline():
            req = json.loads(line)
            answer: dict[str, Any] = {"ok": True}
            if req.get("cmd") == "probe":
                answer = probe_doc(user)
            elif req.get("cmd") == "watch":
                when = float(req.get("timeout_s", 300.0))
                timers.append(loop.call_later(when, timeout, str(req["run_dir"])))
            write(json.dumps({"id": req.get("id"), "answer": answer}) + "\n")
    except (asyncssh.Error, OSError, asyncio.CancelledError):
        pass
    finally:
        for timer in timers:
            timer.cancel()


async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
    command = process.command or ""
    if " session" in command:
        await session(process, _heartbeat_s(command))
    elif "probe" in command:
        process.stdout.write(json.dumps(probe_doc(process.get_extra_info("username"))) + "\n")
    elif " wait " in command:
        try:
            await asyncio.sleep(wait_timeout_s(command))
        except asyncio.CancelledError:  # the client closed the channel
            return
        answer = {"reason": "timeout", "state": {"status": "running", "attempt": 1}}
        process.stdout.write(json.dumps(answer) + "\n")
    process.exit(0)


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True


async def serve(host_key: str, authorized: str) -> None:
    server = await asyncssh.create_server(
        _Server,
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=authorized,
        process_factory=handle,
        keepalive_interval=0,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
