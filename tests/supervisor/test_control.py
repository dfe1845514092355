"""start / ctl / wait / SIGTERM against a live daemonized supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.supervisor import trainers
from tests.supervisor.conftest import ROOT, Run, cli, pid_alive, wait_until


def _running(run: Run, attempt: int = 1):
    def ready():
        try:
            state = run.state()
        except (OSError, ValueError):
            return None
        ok = state["status"] == "running" and state["attempt"] == attempt and state["step"]
        return state if ok else None

    return wait_until(ready)


def test_start_daemonizes_and_refuses_a_second_supervisor_for_the_same_run_dir(run: Run) -> None:
    run.configure(trainers.HANG_FOREVER)
    first = run.start()
    assert first["ok"] is True and pid_alive(first["pid"])
    again = cli("start", "--config", str(run.config_path))
    assert again.returncode == 3
    assert json.loads(again.stdout)["ok"] is False
    stopped = cli("ctl", "--run-dir", str(run.run_dir), "stop")
    assert stopped.returncode == 0, stopped.stdout
    wait_until(lambda: not pid_alive(first["pid"]))


def test_kill_attempt_ends_a_hung_trainer_and_the_supervisor_retries(run: Run) -> None:
    run.configure(trainers.HANG)
    run.start()
    hung = _running(run)
    done = cli("ctl", "--run-dir", str(run.run_dir), "kill-attempt")
    answer = json.loads(done.stdout)
    assert done.returncode == 0 and answer["ok"] and answer["command"] == "kill-attempt"
    assert not pid_alive(hung["trainer_pid"])
    state = run.wait_terminal()
    assert (state["status"], state["outcome"], state["attempt"]) == ("done", "completed", 2)
    assert state["last_failure"]["kind"] == "killed"


def test_ctl_stop_ends_the_run_as_stopped_killed_without_retry(run: Run) -> None:
    run.configure(trainers.HANG_FOREVER)
    run.start()
    trainer_pid = _running(run)["trainer_pid"]
    done = cli("ctl", "--run-dir", str(run.run_dir), "stop")
    assert done.returncode == 0, done.stdout
    state = run.state()
    assert (state["status"], state["outcome"], state["attempt"]) == ("stopped", "killed", 1)
    wait_until(lambda: not pid_alive(trainer_pid))


def test_sigterm_to_the_supervisor_is_a_stop(run: Run) -> None:
    run.configure(trainers.HANG_FOREVER)
    pid = run.start()["pid"]
    trainer_pid = _running(run)["trainer_pid"]
    os.kill(pid, signal.SIGTERM)
    state = run.wait_terminal()
    assert (state["status"], state["outcome"]) == ("stopped", "killed")
    wait_until(lambda: not pid_alive(pid) and not pid_alive(trainer_pid))


def test_a_sigkilled_supervisor_takes_its_trainer_group_down(run: Run) -> None:
    run.configure(trainers.HANG_FOREVER)
    pid = run.start()["pid"]
    trainer_pid = _running(run)["trainer_pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(trainer_pid), timeout=10)
    assert b"supervisor gone" in run.log(1)


def test_ctl_without_a_live_supervisor_exits_3(run: Run) -> None:
    run.run_dir.mkdir()
    done = cli("ctl", "--run-dir", str(run.run_dir), "kill-attempt")
    assert done.returncode == 3
    answer = json.loads(done.stdout)
    assert answer["ok"] is False and "no live supervisor" in answer["message"]


def test_wait_returns_changed_quiet_timeout_and_missing(run: Run) -> None:
    run.configure(trainers.HANG_FOREVER)
    run.start()
    _running(run)
    rd = str(run.run_dir)
    quiet = json.loads(
        cli(
            "wait",
            "--run-dir",
            rd,
            "--status",
            "running",
            "--attempt",
            "1",
            "--quiet",
            "0.5",
            "--timeout",
            "20",
        ).stdout
    )
    assert quiet["reason"] == "quiet" and quiet["state"]["status"] == "running"
    timeout = json.loads(
        cli(
            "wait", "--run-dir", rd, "--status", "running", "--attempt", "1", "--timeout", "0.3"
        ).stdout
    )
    assert timeout["reason"] == "timeout"
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisor",
            "wait",
            "--run-dir",
            rd,
            "--status",
            "running",
            "--attempt",
            "1",
            "--timeout",
            "30",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    time.sleep(0.3)
    cli("ctl", "--run-dir", rd, "stop")
    changed = json.loads(waiter.communicate(timeout=30)[0])
    assert changed["reason"] == "changed" and changed["state"]["status"] == "stopped"
    missing = json.loads(
        cli(
            "wait",
            "--run-dir",
            rd + "-nope",
            "--status",
            "running",
            "--attempt",
            "1",
            "--timeout",
            "5",
        ).stdout
    )
    assert missing == {"reason": "missing", "state": None}


def test_state_json_is_always_valid_while_a_run_goes(run: Run) -> None:
    run.configure(trainers.METRIC_WORSENS, heartbeat_s=0.05)
    run.start()
    path = run.run_dir / "state.json"
    reads = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        state = json.loads(raw)  # raises on a torn write
        reads += 1
        if state["status"] == "done":
            break
    assert state["status"] == "done" and reads > 100
