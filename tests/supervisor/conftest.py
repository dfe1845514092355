"""Helpers for supervisor tests: write a trainer script and RUN.json, run the real CLI."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The supervisor runs on the instance's own Python (3.9+): set this to test it under another one.
SUPERVISOR_PY = os.environ.get("SUPERVISOR_PYTHON", sys.executable)


def cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None):
    return subprocess.run(
        [SUPERVISOR_PY, "-m", "supervisor", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def read_state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "state.json").read_text())


def wait_until(predicate, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met in {timeout:.0f} s")


class Run:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.run_dir = tmp_path / "run"
        self.config_path = tmp_path / "RUN.json"

    def configure(self, script: str, args: str = "", **overrides: Any) -> Path:
        (self.tmp / "train.py").write_text(script)
        script_path = shlex.quote(str(self.tmp / "train.py"))
        command = f"{shlex.quote(sys.executable)} {script_path} {args}"
        doc = {
            "run": "t",
            "run_dir": str(self.run_dir),
            "command": command.strip(),
            "heartbeat_s": 0.2,
            "backoff_s": 0.05,
            "kill_grace_s": 1,
            "cwd": str(self.tmp),
        }
        doc.update(overrides)
        self.config_path.write_text(json.dumps(doc))
        return self.config_path

    def run(self, timeout: float = 60):
        return cli("run", "--config", str(self.config_path), timeout=timeout)

    def start(self):
        done = cli("start", "--config", str(self.config_path))
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def state(self) -> dict[str, Any]:
        return read_state(self.run_dir)

    def log(self, attempt: int) -> bytes:
        return (self.run_dir / "attempts" / f"{attempt}.log").read_bytes()

    def wait_terminal(self, timeout: float = 30.0) -> dict[str, Any]:
        def terminal():
            try:
                state = self.state()
            except (OSError, ValueError):
                return None
            return state if state["status"] in ("done", "failed", "stopped") else None

        return wait_until(terminal, timeout)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
    return True
