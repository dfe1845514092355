"""state.json schema 1 (see ARCHITECTURE.md): the supervisor's whole contract with the watcher.

Written by supervisor.runner (StateFile) at every heartbeat and state change; the watcher reads
it through `probe` and `wait`.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .fsutil import write_json_atomic
from .statefile import SCHEMA, STATE_FILE, TERMINAL
from .timeutil import iso_z


@dataclass
class RunState:
    run: str
    max_attempts: int
    status: str = "starting"
    outcome: Optional[str] = None
    attempt: int = 0
    step: Optional[int] = None
    total_steps: Optional[int] = None
    last_step_at: Optional[dt.datetime] = None
    last_output_at: Optional[dt.datetime] = None
    heartbeat_at: Optional[dt.datetime] = None
    started_at: Optional[dt.datetime] = None
    ended_at: Optional[dt.datetime] = None
    throughput: Optional[float] = None
    gpus: List[Dict[str, Any]] = field(default_factory=list)
    fixes: List[Dict[str, Any]] = field(default_factory=list)
    last_failure: Optional[Dict[str, Any]] = None
    knobs: Dict[str, float] = field(default_factory=dict)
    pid: Optional[int] = None
    trainer_pid: Optional[int] = None
    # how the GPUs were read: {status: ok|none|unreadable, source: nvml|nvidia-smi, error}
    gpu_status: Optional[Dict[str, Any]] = None
    # each GPU's medians over the heartbeats of the last minutes spent printing (gpurecent.py)
    gpu_recent: Optional[Dict[str, Any]] = None
    # the trainer's process tree (proctree.py): None when it cannot be read
    activity: Optional[Dict[str, Any]] = None
    last_activity_at: Optional[dt.datetime] = None
    # the collect command's run (collectcmd.py): None when the run has none
    collect: Optional[Dict[str, Any]] = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> Dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run": self.run,
            "status": self.status,
            "outcome": self.outcome,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "step": self.step,
            "total_steps": self.total_steps,
            "last_step_at": iso_z(self.last_step_at),
            "last_output_at": iso_z(self.last_output_at),
            "heartbeat_at": iso_z(self.heartbeat_at),
            "started_at": iso_z(self.started_at),
            "ended_at": iso_z(self.ended_at),
            "throughput": None if self.throughput is None else round(self.throughput, 4),
            "gpus": list(self.gpus),
            "gpu_status": self.gpu_status,
            "gpu_recent": self.gpu_recent,
            "fixes": list(self.fixes),
            "last_failure": self.last_failure,
            "knobs": {k: _plain_number(v) for k, v in self.knobs.items()},
            "pid": self.pid,
            "trainer_pid": self.trainer_pid,
            "activity": self.activity,
            "last_activity_at": iso_z(self.last_activity_at),
            "collect": self.collect,
        }


def _plain_number(value: float) -> float:
    return int(value) if float(value).is_integer() else value


class StateFile:
    """Writes state.json atomically, so a reader sees the old or the new file, never half."""

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, STATE_FILE)

    def write(self, state: RunState) -> None:
        write_json_atomic(self.path, state.to_json())
