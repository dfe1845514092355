"""`supervisor probe`: one JSON snapshot for the watcher, at a cost independent of log size.

Called by supervisor.__main__ (`probe`), which the watcher runs at every check
(core/supervisor_client.py).
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Dict, List, Optional

from .fsutil import disk_free_mb, write_json_atomic
from .gpu import as_report, read_gpu_report
from .logread import attempt_log, read_chunk, tail_lines
from .metrics import read_metrics
from .statefile import ACK_FILE, STORED_ACK_FILE, read_state, stored_ack_matches
from .timeutil import iso_z, utcnow

PROBE_VERSION = 1
_ATTEMPT_LOG = re.compile(r"^(\d+)\.log$")


def snapshot(
    run_dir: str,
    attempt: Optional[int] = None,
    offset: int = 0,
    max_bytes: int = 65536,
    tail_count: int = 40,
    ack: Optional[str] = None,
    gpu_reader: Callable[[], Any] = read_gpu_report,
    metrics: bool = False,
) -> Dict[str, Any]:
    state, state_error = read_state(run_dir)
    current = _current_attempt(run_dir, state)
    log = None
    tail: List[str] = []
    if current is not None:
        path = attempt_log(run_dir, current)
        start = offset if attempt == current else 0
        log = read_chunk(path, current, start, max(0, max_bytes))
        tail = tail_lines(path, tail_count)
    if ack:
        _write_ack(run_dir, ack, state)
    gpu = as_report(gpu_reader())
    extra = {"metrics": read_metrics(run_dir)} if metrics else {}
    return {
        "probe": PROBE_VERSION,
        "at": iso_z(utcnow()),
        "state": state,
        "state_error": state_error,
        "log": log,
        "tail": tail,
        "gpus": gpu["gpus"],
        "gpu_status": {k: gpu.get(k) for k in ("status", "source", "error")},
        "disk_free_mb": _rounded(disk_free_mb(run_dir)),
        **extra,
    }


def _current_attempt(run_dir: str, state: Optional[Dict[str, Any]]) -> Optional[int]:
    if state is not None:
        value = state.get("attempt")
        return value if isinstance(value, int) and value >= 1 else None
    try:
        names = os.listdir(os.path.join(run_dir, "attempts"))
    except OSError:
        return None
    numbers = [int(m.group(1)) for m in map(_ATTEMPT_LOG.match, names) if m]
    return max(numbers) if numbers else None


def write_stored_ack(
    run_dir: str, watcher: str, status: str, attempt: int, ended_at: str
) -> Dict[str, Any]:
    """`ack`: the watcher has committed this terminal state to its store. Recorded whatever it
    says; the dead-man switch disarms only if it matches the supervisor's own terminal state."""
    doc = {
        "watcher": watcher[:200],
        "at": iso_z(utcnow()),
        "status": status[:40],
        "attempt": attempt,
        "ended_at": ended_at[:64],
    }
    state, _ = read_state(run_dir)
    matches = stored_ack_matches(doc, state)
    try:
        write_json_atomic(os.path.join(run_dir, STORED_ACK_FILE), doc)
    except OSError as exc:
        return {"ok": False, "matches": matches, "message": "ack not written: %s" % exc}
    return {"ok": True, "matches": matches, "message": "acknowledged"}


def _write_ack(run_dir: str, watcher: str, state: Optional[Dict[str, Any]]) -> None:
    """A probe's ack says only that a watcher is alive and read this status: it keeps the
    silence rule quiet, and never disarms the switch after the end (that needs `ack`)."""
    status = state.get("status") if state else None
    doc = {"watcher": watcher[:200], "at": iso_z(utcnow()), "status": status}
    try:
        write_json_atomic(os.path.join(run_dir, ACK_FILE), doc)
    except OSError:
        pass  # a missing run dir: the probe still answers, and state_error says why


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 1)
