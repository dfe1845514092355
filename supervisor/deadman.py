"""Dead-man switch: a run nobody watches destroys its own instance (Vast.ai instance API).

Held by supervisor.runner.Supervisor (armed at start, checked each tick, waited on after the
end); the HTTP calls that destroy the instance are supervisor.instanceapi.

Fires when (a) the run is terminal and no watcher acknowledged a terminal state within
ack_timeout_s, or (b) no watcher acknowledged anything for watcher_silence_s while live.
Watchers show they are alive with `probe --ack ID` (watcher_ack.json) and acknowledge the end
with `ack` once they have stored it (watcher_stored.json). The key is never
logged or written anywhere.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .config import Deadman
from .fsutil import read_json, write_json_atomic
from .instanceapi import PROC1_ENVIRON as PROC1_ENVIRON
from .instanceapi import credentials, destroy_instance
from .statefile import ACK_FILE, STORED_ACK_FILE, read_state, stored_ack_matches
from .timeutil import iso_z

REPORT_FILE = "deadman.json"


def due(
    now: float,
    armed_at: float,
    terminal_at: Optional[float],
    last_ack_at: Optional[float],
    terminal_acked: bool,
    ack_timeout_s: float,
    watcher_silence_s: float,
) -> Optional[str]:
    """Why the switch fires now (monotonic seconds throughout), or None."""
    if terminal_at is not None and not terminal_acked and now - terminal_at >= ack_timeout_s:
        return "no watcher acknowledged the terminal state within %.0f s" % ack_timeout_s
    last_seen = armed_at if last_ack_at is None else last_ack_at
    if terminal_at is None and now - last_seen >= watcher_silence_s:
        return "no watcher acknowledged anything for %.0f s" % watcher_silence_s
    return None


class AckWatch:
    """Notices new acks by the files' mtime and inode; times are the supervisor's own monotonic
    clock. Two phases: a probe's ack (watcher_ack.json) proves a watcher is alive; only an `ack`
    naming this run's own terminal state (watcher_stored.json: status, attempt, ended_at, sent
    after the watcher committed it) counts as acknowledging the end. A watcher that read the
    terminal state but could not store it (noise, a crash) leaves the switch armed."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, ACK_FILE)
        self.stored_path = os.path.join(run_dir, STORED_ACK_FILE)
        self._seen: Dict[str, Tuple[int, int]] = {}
        self.last_ack_at: Optional[float] = None
        self.last_status: Optional[str] = None
        self.terminal_acked = False

    def clear_stale(self) -> None:
        for path in (self.path, self.stored_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def poll(self, now: float) -> None:
        doc = self._changed(self.path)
        if isinstance(doc, dict):
            self.last_ack_at, self.last_status = now, str(doc.get("status"))
        stored = self._changed(self.stored_path)
        if isinstance(stored, dict):
            self.last_ack_at = now
            if stored_ack_matches(stored, read_state(self.run_dir)[0]):
                self.terminal_acked, self.last_status = True, str(stored.get("status"))

    def _changed(self, path: str) -> Any:
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_ino)
        if self._seen.get(path) == stamp:
            return None
        self._seen[path] = stamp
        try:
            return read_json(path)
        except (OSError, ValueError, RecursionError):
            return None


def write_report(run_dir: str, report: dict) -> None:
    write_json_atomic(os.path.join(run_dir, REPORT_FILE), report)


class DeadManSwitch:
    """The switch as the supervisor holds it: armed at construction, fires at most once."""

    def __init__(
        self,
        cfg: Deadman,
        run_dir: str,
        environ: Mapping[str, str],
        proc_environ: str,
        log: Callable[[str], None],
        clock: Callable[[], Any],
    ) -> None:
        self.cfg, self.run_dir, self.environ, self.proc_environ = (
            cfg,
            run_dir,
            environ,
            proc_environ,
        )
        self.log, self.clock = log, clock
        self.ack = AckWatch(run_dir)
        self.armed_at = time.monotonic()
        self.fired = False

    def _due(self, now: float, terminal_at: Optional[float]) -> Optional[str]:
        return due(
            now,
            self.armed_at,
            terminal_at,
            self.ack.last_ack_at,
            self.ack.terminal_acked,
            self.cfg.ack_timeout_s,
            self.cfg.watcher_silence_s,
        )

    def fired_while_live(self, now: float) -> bool:
        """Checked every tick while the run is live; True when it has just fired."""
        if not self.cfg.enabled or self.fired:
            return False
        self.ack.poll(now)
        reason = self._due(now, None)
        if reason is not None:
            self.fire(reason)
        return reason is not None

    def wait_after_end(self, tick: Callable[[], None], interrupted: Callable[[], bool]) -> None:
        """After a terminal state: return on a terminal ack, on firing, or when interrupted."""
        if not self.cfg.enabled or self.fired:
            return
        terminal_at = time.monotonic()
        self.log("waiting for a watcher to acknowledge the terminal state")
        while not interrupted():
            now = time.monotonic()
            self.ack.poll(now)
            if self.ack.terminal_acked:
                self.log("a watcher acknowledged the terminal state; dead-man switch disarmed")
                write_report(
                    self.run_dir,
                    {
                        "fired": False,
                        "at": iso_z(self.clock()),
                        "reason": "watcher acknowledged %s" % self.ack.last_status,
                    },
                )
                return
            reason = self._due(now, terminal_at)
            if reason is not None:
                self.fire(reason)
                return
            tick()
        self.log("SIGTERM while the dead-man switch was armed: exiting without firing")

    def fire(self, reason: str) -> None:
        self.fired = True
        self.log("dead-man switch fires: %s" % reason)
        instance_id, key = credentials(self.environ, self.proc_environ)
        report: Dict[str, Any] = {
            "fired": True,
            "reason": reason,
            "at": iso_z(self.clock()),
            "instance_id": instance_id,
        }
        if not instance_id or not key:
            report.update(ok=False, message="CONTAINER_ID or CONTAINER_API_KEY not found")
        else:
            result = destroy_instance(
                self.cfg.api_base, instance_id, key, self.cfg.retries, self.cfg.retry_backoff_s
            )
            report.update(
                ok=result.ok,
                http_status=result.http_status,
                tries=result.tries,
                message=result.message,
            )
        self.log("dead-man switch: %s" % report["message"])
        write_report(self.run_dir, report)
