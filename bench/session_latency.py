"""`python -m bench.session_latency [-n N]`: one probe through the supervisor session vs. one
probe by SSH exec, over a real OpenSSH sshd on 127.0.0.1 (started here, for this user) against
a real supervisor run dir: wall time per request and the watcher's CPU per request.

Part of `make bench` (it needs /usr/sbin/sshd, as the tests do). Writes
bench/results/session_latency.json (with --quick: session_latency.quick.json). The instance
side is this machine, so the exec figure holds no login-shell cost (a `.bashrc` with `pyenv
init` adds ~120 ms per exec on a real host; the session pays it once)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncssh

from bench.common import machine, now_iso
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.supervisor_client import SupervisorClient
from core.supervisor_session import SessionHub

ROOT = Path(__file__).resolve().parent.parent
SSHD = "/usr/sbin/sshd"


def start_sshd(work: Path) -> tuple[subprocess.Popen[bytes], SshTarget]:
    user_key, host_key = asyncssh.generate_private_key("ssh-ed25519"), work / "host_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(host_key)
    user_key.write_private_key(work / "id")
    (work / "id").chmod(0o600)
    host_key.chmod(0o600)
    (work / "authorized_keys").write_text(user_key.export_public_key().decode())
    (work / "home").mkdir()
    (work / "home" / ".bashrc").write_text("")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = [
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"PidFile {work / 'sshd.pid'}", f"AuthorizedKeysFile {work / 'authorized_keys'}",
        "UsePAM no", "StrictModes no", "PasswordAuthentication no", "MaxSessions 10",
        "UseDNS no", "PrintMotd no", f"SetEnv HOME={work / 'home'}",
    ]  # fmt: skip
    (work / "sshd_config").write_text("\n".join(config) + "\n")
    log = (work / "sshd.log").open("ab")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(work / "sshd_config")], stderr=log)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    user = pwd.getpwuid(os.getuid()).pw_name
    return proc, SshTarget("127.0.0.1", port, user, work / "id")


def run_dir_with_state(work: Path) -> str:
    run_dir = work / "run"
    (run_dir / "attempts").mkdir(parents=True)
    (run_dir / "attempts" / "1.log").write_text("step 1/10\n" * 2000)
    state = {"schema": 1, "run": "b", "status": "running", "attempt": 1, "max_attempts": 3}
    (run_dir / "state.json").write_text(json.dumps(state))
    return str(run_dir)


async def timed(client: SupervisorClient, run_dir: str, n: int) -> dict[str, float]:
    walls: list[float] = []
    cpu0 = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        await client.probe(run_dir, attempt=1, offset=0)
        walls.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu0
    walls.sort()
    return {
        "n": n,
        "median_ms": round(statistics.median(walls) * 1000, 2),
        "p90_ms": round(walls[int(0.9 * (n - 1))] * 1000, 2),
        "watcher_cpu_ms_per_request": round(cpu / n * 1000, 2),
    }


async def measure(target: SshTarget, work: Path, n: int) -> dict[str, Any]:
    run_dir = run_dir_with_state(work)
    pool = SshPool(work / "pins")
    transport = SshTransport(pool, target, SshOptions())
    hub = SessionHub()
    via_session = SupervisorClient(transport, sys.executable, str(ROOT), 60.0, sessions=hub)
    via_exec = SupervisorClient(transport, sys.executable, str(ROOT), 60.0)
    try:
        await via_exec.probe(run_dir, attempt=1, offset=0)  # connect, warm caches
        await via_session.probe(run_dir, attempt=1, offset=0)  # opens the session
        execs = await timed(via_exec, run_dir, max(10, n // 4))
        session = await timed(via_session, run_dir, n)
        assert hub.counts["opened"] == 1 and hub.counts["fallback"] == 0, hub.counts
    finally:
        await hub.close()
        await pool.close()
    ratio = execs["median_ms"] / session["median_ms"] if session["median_ms"] else None
    return {
        "machine": machine(),
        "exec": execs,
        "session": session,
        "exec_over_session_median": round(ratio, 1) if ratio else None,
    }


def main(quick: bool = False, n: int | None = None) -> dict[str, Any]:
    n = n or (40 if quick else 400)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, target = start_sshd(work)
        try:
            result = asyncio.run(measure(target, work, n))
        finally:
            proc.terminate()
            proc.wait()
    result = {"bench": "session_latency", "quick": quick, "at": now_iso(), **result}
    print(json.dumps(result, indent=2))
    name = "session_latency.quick.json" if quick else "session_latency.json"
    (ROOT / "bench" / "results" / name).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.session_latency")
    parser.add_argument("-n", type=int, default=400, help="session probes (execs: a quarter)")
    parser.add_argument("--quick", action="store_true", help="40 probes: a smoke run")
    args = parser.parse_args()
    main(args.quick, None if args.quick else args.n)
