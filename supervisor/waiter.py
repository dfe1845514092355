"""`supervisor wait`: block until status or attempt change, the trainer goes quiet, or timeout.

Called by supervisor.__main__ (`wait`), which the watcher keeps open for each run
(core/waiter.py).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional

from .logread import attempt_log
from .statefile import STATE_FILE, read_state

POLL_S = 0.5


def wait_for_change(
    run_dir: str,
    status: str,
    attempt: int,
    quiet_s: Optional[float],
    timeout_s: float,
    poll_s: float = POLL_S,
    wall: Callable[[], float] = time.time,
) -> Dict[str, Any]:
    """{"reason": changed|quiet|timeout|missing, "state": the last state read or None}."""
    deadline = time.monotonic() + timeout_s
    state_path = os.path.join(run_dir, STATE_FILE)
    seen: Optional[tuple] = None
    state: Optional[Dict[str, Any]] = None
    while True:
        try:
            st = os.stat(state_path)
        except FileNotFoundError:
            return {"reason": "missing", "state": None}
        if (st.st_mtime_ns, st.st_size, st.st_ino) != seen:
            seen = (st.st_mtime_ns, st.st_size, st.st_ino)
            state, _ = read_state(run_dir)
        if state is not None:
            if state.get("status") != status or state.get("attempt") != attempt:
                return {"reason": "changed", "state": state}
            if (
                quiet_s is not None
                and status == "running"
                and _quiet_for(run_dir, attempt, wall()) >= quiet_s
            ):
                return {"reason": "quiet", "state": state}
        if time.monotonic() >= deadline:
            return {"reason": "timeout", "state": state}
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def _quiet_for(run_dir: str, attempt: int, now: float) -> float:
    try:
        return now - os.stat(attempt_log(run_dir, attempt)).st_mtime
    except OSError:
        return 0.0
