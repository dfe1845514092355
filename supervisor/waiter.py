"""`supervisor wait`: block until status or attempt change, the trainer goes quiet, or timeout.

Called by supervisor.__main__ (`wait`), which the watcher keeps open for a run when it has no
session (core/waiter.py), and stepped by supervisor.session for every run dir a session
watches (one `Watch` per run dir, one poll step each at a time).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional

from .logread import attempt_log
from .statefile import STATE_FILE, read_state

POLL_S = 0.5


class Watch:
    """One wait on one run dir: `step` polls it once and returns the answer when there is
    one ({"reason": changed|quiet|timeout|missing, "state": the last state read or None})."""

    def __init__(
        self,
        run_dir: str,
        status: str,
        attempt: int,
        quiet_s: Optional[float],
        timeout_s: float,
        now_mono: float,
    ) -> None:
        self.run_dir = run_dir
        self.status = status
        self.attempt = attempt
        self.quiet_s = quiet_s
        self.deadline = now_mono + timeout_s
        self._state_path = os.path.join(run_dir, STATE_FILE)
        self._seen: Optional[tuple] = None
        self.state: Optional[Dict[str, Any]] = None

    def step(self, now_mono: float, now_wall: float) -> Optional[Dict[str, Any]]:
        try:
            st = os.stat(self._state_path)
        except FileNotFoundError:
            return {"reason": "missing", "state": None}
        if (st.st_mtime_ns, st.st_size, st.st_ino) != self._seen:
            self._seen = (st.st_mtime_ns, st.st_size, st.st_ino)
            self.state, _ = read_state(self.run_dir)
        state = self.state
        if state is not None:
            if state.get("status") != self.status or state.get("attempt") != self.attempt:
                return {"reason": "changed", "state": state}
            if (
                self.quiet_s is not None
                and self.status == "running"
                and _quiet_for(self.run_dir, self.attempt, now_wall) >= self.quiet_s
            ):
                return {"reason": "quiet", "state": state}
        if now_mono >= self.deadline:
            return {"reason": "timeout", "state": state}
        return None


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
    watch = Watch(run_dir, status, attempt, quiet_s, timeout_s, time.monotonic())
    while True:
        done = watch.step(time.monotonic(), wall())
        if done is not None:
            return done
        time.sleep(min(poll_s, max(0.0, watch.deadline - time.monotonic())))


def _quiet_for(run_dir: str, attempt: int, now: float) -> float:
    try:
        return now - os.stat(attempt_log(run_dir, attempt)).st_mtime
    except OSError:
        return 0.0
