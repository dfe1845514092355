"""The supervisor's tick: one beat of its loop, every `tick_s` while an attempt runs, during
backoff and while the dead-man switch waits. It reads ctl requests (supervisor.control), checks
the dead-man switch, beats the heartbeat (GPUs, the trainer's process tree, throughput) and
writes state.json when it changed.

The base class of supervisor.runner.Supervisor, which owns the attempt loop; the attempt watch
(supervisor.attempt) calls tick, mark_dirty, write_state and the take_*_request methods.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from . import control
from .config import Config
from .deadman import DeadManSwitch
from .gpu import read_report_safely
from .gpurecent import RecentGpus
from .proctree import ActivityTracker
from .progress import ProgressTracker
from .state import RunState, StateFile


class Ticker:
    """What the tick reads and writes; Supervisor.__init__ sets every attribute."""

    config: Config
    state: RunState
    state_file: StateFile
    log: Callable[[str], None]
    clock: Callable[[], Any]
    phase: str
    tick_s: float
    progress: Optional[ProgressTracker]
    gpu_reader: Callable[[], Any]
    recent_gpus: RecentGpus
    activity: ActivityTracker
    dead_man: DeadManSwitch
    _dirty: bool
    _last_write: float
    _next_beat: float
    _stop_signal: bool
    _stop_request: Optional[Dict[str, Any]]
    _kill_request: Optional[Dict[str, Any]]

    # -- called by the attempt watcher and by waits ----------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop_signal or self._stop_request is not None

    def take_stop_request(self) -> bool:
        return self.stopping

    def take_kill_request(self) -> bool:
        return self._kill_request is not None

    def _answer_kill(self, ok: bool, message: str) -> None:
        if self._kill_request is not None:
            control.reply(self.config.run_dir, self._kill_request, ok, message)
            self._kill_request = None

    def mark_dirty(self) -> None:
        self._dirty = True

    def write_state(self) -> None:
        self.state_file.write(self.state)
        self._dirty, self._last_write = False, time.monotonic()

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping:
            self.tick()

    def tick(self) -> None:
        """One beat of the loop: ctl requests, the dead-man switch, state writes, then sleep."""
        self._read_control()
        now = time.monotonic()
        if self.phase != "terminal" and self.dead_man.fired_while_live(now):
            self._stop_signal = True  # the instance is going away: end the run cleanly first
        if now >= self._next_beat:
            self._heartbeat(now)
        elif self._dirty and now - self._last_write >= min(1.0, self.config.heartbeat_s):
            self.write_state()
        time.sleep(self.tick_s)

    def _heartbeat(self, now: float) -> None:
        state = self.state
        self._read_gpus()
        state.heartbeat_at = self.clock()
        if self.phase == "attempt":
            self.recent_gpus.note(
                state.heartbeat_at, state.gpus, state.last_output_at, state.attempt
            )
            state.gpu_recent = self.recent_gpus.summary()
        if self.progress is not None and self.phase == "attempt":
            state.throughput = self.progress.throughput(now)
        self._read_activity(now)
        self.write_state()
        self._next_beat = now + self.config.heartbeat_s

    def _read_gpus(self) -> None:
        report = read_report_safely(self.gpu_reader)
        self.state.gpus = report["gpus"]
        self.state.gpu_status = {k: report.get(k) for k in ("status", "source", "error")}

    def _read_activity(self, now: float) -> None:
        state = self.state
        pid = state.trainer_pid if self.phase == "attempt" else None
        state.activity = self.activity.stamped(pid, state.heartbeat_at, now)
        known = state.activity is not None
        state.last_activity_at = self.activity.last_active_at if known else None

    def _read_control(self) -> None:
        request = control.take_command(self.config.run_dir)
        if request is None:
            return
        self.log("ctl %s received" % request["command"])
        where = control.route(self.config.run_dir, request, self.phase, self.state.status)
        if where == "stop":
            self._stop_request = request
        elif where == "kill":
            self._kill_request = request
