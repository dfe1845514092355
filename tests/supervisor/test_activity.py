"""The trainer's process tree as the supervisor reads it (supervisor/proctree.py), and what the
watcher's real rules make of it: a real supervisor runs a real trainer that goes silent while
burning CPU, writing a checkpoint, or sleeping. The silence is measured on the instance's own
timestamps in state.json (polled, never slept for); the watcher's window is scaled down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.memory import Memory
from core.protocol import parse_probe
from core.rules import Observation, Policy, Thresholds, assess
from supervisor.proctree import ActivityTracker, cpu_seconds, io_bytes, tree_pids
from tests.supervisor.conftest import Run, cli, wait_until
from tests.supervisor.test_gpu import env

SILENT_BURN = """
import time
print("step 1/100", flush=True)
while True:  # loading weights / torch.compile: busy, silent
    sum(i * i for i in range(10000))
"""
SILENT_WRITE = """
import os, time
print("step 1/100", flush=True)
block = os.urandom(4 << 20)
while True:  # a long checkpoint save: bytes move, nothing printed
    with open("ckpt.bin", "wb") as f:
        f.write(block)
    time.sleep(0.05)
"""
SILENT_SLEEP = """
import time
print("step 1/100", flush=True)
time.sleep(3600)  # a deadlock: nothing moves
"""
IDLE_GPU = {"gpus": [{"util": 0, "mem_util": 0, "used_mb": 30000, "total_mb": 81559}]}
WINDOW_S = 2.0  # the watcher's stall window, scaled down from 600 s
POLICY = Policy(
    thresholds=replace(
        Thresholds(), stall_after_s=WINDOW_S, hang_after_s=WINDOW_S, silent_alert_s=3600.0
    )
)


def _at(state: dict[str, Any], key: str):
    value = state.get(key)
    return datetime.fromisoformat(value) if value else None


def _silent_for(run: Run, seconds: float, *, idle_for: float | None = None) -> dict[str, Any]:
    """Wait until state.json shows the trainer silent for `seconds` by its own heartbeat (and,
    if given, its tree without progress for `idle_for`)."""

    def ready():
        try:
            state = run.state()
        except (OSError, ValueError):
            return None
        beat, out = _at(state, "heartbeat_at"), _at(state, "last_output_at")
        if state["status"] != "running" or not beat or not out or not state.get("activity"):
            return None
        if (beat - out).total_seconds() < seconds:
            return None
        active = _at(state, "last_activity_at")
        if idle_for is not None and (not active or (beat - active).total_seconds() < idle_for):
            return None
        return state

    return wait_until(ready, timeout=60)


def _judge(*states: dict[str, Any]):
    """The real watcher rules over probes built from real state.json snapshots."""
    memory = Memory(launched_at=_at(states[0], "started_at"))
    result = None
    for state in states:
        when = state["heartbeat_at"]
        doc = {"probe": 1, "at": when, "state": state, "gpus": state["gpus"]}
        probe = parse_probe(json.dumps(doc))
        result = assess(memory, Observation(at=probe.at, probe=probe), POLICY, probe.at)
        memory = result.memory
    assert result is not None
    return result


@pytest.fixture
def started(run: Run, tmp_path: Path):
    def start(script: str) -> Run:
        run.configure(script, heartbeat_s=0.2)
        done = cli("start", "--config", str(run.config_path), env=env(tmp_path, IDLE_GPU))
        assert done.returncode == 0, done.stderr
        return run

    yield start
    cli("ctl", "--run-dir", str(run.run_dir), "stop")


def test_silent_but_burning_cpu_is_not_a_stall(started) -> None:
    run = started(SILENT_BURN)
    first = _silent_for(run, 1.0)
    later = _silent_for(run, 2 * WINDOW_S + 1)
    assert later["activity"]["cpu_s"] > first["activity"]["cpu_s"]
    assert (_at(later, "heartbeat_at") - _at(later, "last_activity_at")).total_seconds() < 2
    result = _judge(first, later)
    assert result.kill_attempt is None
    assert result.findings == ()


def test_silent_but_writing_a_checkpoint_is_not_a_stall(started) -> None:
    run = started(SILENT_WRITE)
    first = _silent_for(run, 1.0)
    later = _silent_for(run, 2 * WINDOW_S + 1)
    assert later["activity"]["io_bytes"] - first["activity"]["io_bytes"] > 8 << 20
    assert (_at(later, "heartbeat_at") - _at(later, "last_activity_at")).total_seconds() < 2
    result = _judge(first, later)
    assert result.kill_attempt is None and result.findings == ()


def test_silent_and_sleeping_with_an_idle_gpu_is_a_stall(started) -> None:
    run = started(SILENT_SLEEP)
    first = _silent_for(run, 1.0)
    later = _silent_for(run, 2 * WINDOW_S + 1, idle_for=WINDOW_S + 1)
    assert later["activity"]["cpu_s"] == pytest.approx(first["activity"]["cpu_s"], abs=0.05)
    result = _judge(first, later)
    assert result.kill_attempt == 1
    assert "no CPU or I/O progress" in result.events[0].reason


def test_the_tree_includes_grandchildren_and_sums_their_cpu() -> None:
    script = "import subprocess,sys; subprocess.run([sys.executable,'-c','while 1: pass'])"
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        pids = wait_until(lambda: (lambda p: p if len(p) == 2 else None)(tree_pids(parent.pid)))
        assert pids[0] == parent.pid
        before = cpu_seconds(pids)
        wait_until(lambda: (cpu_seconds(pids) or 0) > (before or 0) + 0.2)
        assert io_bytes(pids) is not None  # our own children: /proc/<pid>/io is readable
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the grandchild too: it would spin on forever
        parent.wait()
    assert tree_pids(parent.pid) == []


def test_without_task_children_files_the_tree_comes_from_a_ppid_scan(tmp_path: Path) -> None:
    # a /proc laid out like a kernel without CONFIG_PROC_CHILDREN, with real stat lines
    own = Path(f"/proc/{os.getpid()}/stat").read_text()
    rest = own[own.rindex(")") + 2 :].split()
    for pid, ppid, name in ((100, 1, "python3"), (101, 100, "pt_data_worker"), (102, 101, "x")):
        fields = [rest[0], str(ppid), *rest[2:]]
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name} (a)) {' '.join(fields)}\n")
    (tmp_path / "self").mkdir()
    assert tree_pids(100, str(tmp_path)) == [100, 101, 102]
    assert io_bytes([100, 101, 102], str(tmp_path)) is None  # no io file: unknown, not 0


def test_noise_is_not_progress_and_a_new_trainer_starts_afresh(tmp_path: Path) -> None:
    proc = tmp_path / "7"
    proc.mkdir()
    (proc / "task").mkdir()
    own = Path(f"/proc/{os.getpid()}/stat").read_text()
    rest = own[own.rindex(")") + 2 :].split()

    def counters(ticks: int, wchar: int) -> None:
        fields = [*rest[:11], str(ticks), "0", *rest[13:]]
        (proc / "stat").write_text(f"7 (trainer) {' '.join(fields)}\n")
        (proc / "io").write_text(f"rchar: 0\nwchar: {wchar}\n")

    tracker = ActivityTracker(str(tmp_path))
    ticks = os.sysconf("SC_CLK_TCK")
    counters(0, 0)
    tracker.observe(7, "t0", 0.0)
    assert tracker.last_active_at == "t0"  # the first reading of a trainer counts
    counters(ticks // 100, 4096)  # 0.01 s CPU and 4 KiB over 15 s: a background thread
    tracker.observe(7, "t1", 15.0)
    assert tracker.last_active_at == "t0"
    counters(ticks * 10, 4096)  # 10 s of CPU in 15 s: computing
    reading = tracker.observe(7, "t2", 30.0)
    assert (tracker.last_cpu_at, tracker.last_io_at) == ("t2", "t0")
    assert reading is not None and reading["cpu_s"] == pytest.approx(10.0)
    counters(ticks * 10, 4096 + (8 << 20))  # 8 MiB written: saving
    tracker.observe(7, "t3", 45.0)
    assert tracker.last_io_at == "t3"
    assert tracker.observe(8, "t4", 60.0) is None  # pid 8 does not exist
    assert tracker.last_active_at is None
