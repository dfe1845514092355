"""Dead-man switch: a run nobody watches destroys its own instance (Vast.ai instance API).

Fires when (a) the run is terminal and no watcher acknowledged a terminal state within
ack_timeout_s, or (b) no watcher acknowledged anything for watcher_silence_s while live.
Watchers acknowledge with `probe --ack ID`, which writes watcher_ack.json. The key is never
logged or written anywhere.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .config import Deadman
from .fsutil import read_json, write_json_atomic
from .statefile import ACK_FILE, TERMINAL
from .timeutil import iso_z

REPORT_FILE = "deadman.json"
PROC1_ENVIRON = "/proc/1/environ"


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
    """Notices new acks by the file's mtime; times are the supervisor's own monotonic clock."""

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, ACK_FILE)
        self._mtime_ns: Optional[int] = None
        self.last_ack_at: Optional[float] = None
        self.last_status: Optional[str] = None

    def clear_stale(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def poll(self, now: float) -> None:
        try:
            mtime_ns = os.stat(self.path).st_mtime_ns
        except OSError:
            return
        if mtime_ns == self._mtime_ns:
            return
        self._mtime_ns = mtime_ns
        try:
            doc = read_json(self.path)
        except (OSError, ValueError):
            return
        if isinstance(doc, dict):
            self.last_ack_at, self.last_status = now, str(doc.get("status"))

    @property
    def terminal_acked(self) -> bool:
        return self.last_status in TERMINAL


def credentials(
    environ: Mapping[str, str], proc_environ: str = PROC1_ENVIRON
) -> Tuple[Optional[str], Optional[str]]:
    """CONTAINER_ID and CONTAINER_API_KEY from the environment, else from PID 1's (an SSH
    session on a Vast instance does not inherit the container's variables)."""
    found = {k: environ.get(k) for k in ("CONTAINER_ID", "CONTAINER_API_KEY")}
    if not all(found.values()):
        try:
            with open(proc_environ, "rb") as fh:
                pairs = fh.read().split(b"\0")
        except OSError:
            pairs = []
        for pair in pairs:
            name, _, value = pair.decode("utf-8", "replace").partition("=")
            if name in found and not found[name]:
                found[name] = value
    return found["CONTAINER_ID"], found["CONTAINER_API_KEY"]


@dataclass
class DestroyResult:
    ok: bool
    http_status: Optional[int]
    tries: int
    message: str


def destroy_instance(
    api_base: str,
    instance_id: str,
    api_key: str,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 30.0,
) -> DestroyResult:
    """DELETE the instance; retry 429 and 5xx (and network errors) with doubling backoff."""
    import urllib.error  # imported here: urllib costs `probe` start-up time it never needs
    import urllib.request

    url = "%s/api/v0/instances/%s/" % (api_base.rstrip("/"), instance_id)
    status: Optional[int] = None
    message = ""
    for attempt in range(1, retries + 1):
        # api_base is checked to be http(s) when the config is loaded.
        request = urllib.request.Request(url, method="DELETE")  # noqa: S310
        request.add_header("Authorization", "Bearer " + api_key)
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                return DestroyResult(True, response.status, attempt, "instance destroyed")
        except urllib.error.HTTPError as exc:
            status, message = exc.code, "HTTP %d %s" % (exc.code, exc.reason)
            if exc.code != 429 and exc.code < 500:
                return DestroyResult(False, status, attempt, message)
        except (urllib.error.URLError, OSError) as exc:
            status, message = None, "network error: %s" % getattr(exc, "reason", exc)
        if attempt < retries:
            sleep(backoff_s * 2 ** (attempt - 1))
    return DestroyResult(False, status, retries, message)


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
