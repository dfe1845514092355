"""Dead-man switch: a run nobody watches destroys its own instance (Vast.ai instance API).

Fires when (a) the run is terminal and no watcher acknowledged a terminal state within
ack_timeout_s, or (b) no watcher acknowledged anything for watcher_silence_s while live.
Watchers show they are alive with `probe --ack ID` (watcher_ack.json) and acknowledge the end
with `ack` once they have stored it (watcher_stored.json). The key is never
logged or written anywhere.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .config import Deadman
from .fsutil import read_json, write_json_atomic
from .statefile import ACK_FILE, STORED_ACK_FILE, read_state, stored_ack_matches
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


RETRY_AFTER_CAP_S = 300.0
GONE_READS = 2  # reads in a row that must say "gone" after a DELETE
VERIFY_POLLS = 6


def retry_after_s(value: Optional[str], cap_s: float = RETRY_AFTER_CAP_S) -> Optional[float]:
    """A Retry-After header in seconds, clamped to [0, cap_s]; None when absent or not a finite
    number (nan, inf, an HTTP-date, garbage): the caller's own backoff applies then."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap_s)


@dataclass
class DestroyResult:
    ok: bool
    http_status: Optional[int]
    tries: int
    message: str


@dataclass
class _Answer:
    status: Optional[int]  # None: no answer (network error)
    doc: Any  # the JSON body, or None when it was not JSON
    retry_after: Optional[float]
    error: str = ""


def _call(
    method: str, url: str, api_key: str, timeout_s: float, max_bytes: int = 1 << 20
) -> _Answer:
    import urllib.error  # imported here: urllib costs `probe` start-up time it never needs
    import urllib.request

    # api_base is checked to be http(s) when the config is loaded.
    request = urllib.request.Request(url, method=method)  # noqa: S310
    request.add_header("Authorization", "Bearer " + api_key)
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            status, headers, raw = response.status, response.headers, response.read(max_bytes)
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _Answer(None, None, None, "network error: %s" % getattr(exc, "reason", exc))
    try:
        doc = json.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, RecursionError):
        doc = None
    return _Answer(status, doc, retry_after_s(headers.get("Retry-After") if headers else None))


def _gone(answer: _Answer) -> Optional[bool]:
    """True: the provider clearly says gone (404, or an explicit empty `instances`); False: it
    shows the instance; None: unreadable or failed, which is neither."""
    if answer.status == 404:
        return True
    if answer.status != 200 or not isinstance(answer.doc, dict) or "instances" not in answer.doc:
        return None
    instances = answer.doc["instances"]
    if instances in (None, {}, []):
        return True
    return False if isinstance(instances, (dict, list)) else None


def _verify_gone(
    url: str, api_key: str, sleep: Callable[[float], None], interval_s: float, timeout_s: float
) -> bool:
    in_a_row = 0
    for poll in range(VERIFY_POLLS):
        if poll:
            sleep(interval_s)
        in_a_row = in_a_row + 1 if _gone(_call("GET", url, api_key, timeout_s)) else 0
        if in_a_row >= GONE_READS:
            return True
    return False


def destroy_instance(
    api_base: str,
    instance_id: str,
    api_key: str,
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 30.0,
) -> DestroyResult:
    """DELETE the instance, then read it back until it is gone twice in a row. Only a 2xx
    whose body says success (or a 404) counts as accepted: HTTP 200 `{"success": false}`, an
    HTML page or no body is retried like a 429 or 5xx, waiting the server's Retry-After
    (clamped) or a doubling backoff. `ok` only once the reads said gone."""
    url = "%s/api/v0/instances/%s/" % (api_base.rstrip("/"), instance_id)
    status: Optional[int] = None
    message = ""
    for attempt in range(1, retries + 1):
        answer = _call("DELETE", url, api_key, timeout_s)
        status = answer.status
        accepted = status == 404 or (
            status is not None
            and 200 <= status < 300
            and isinstance(answer.doc, dict)
            and answer.doc.get("success") is True
        )
        if accepted:
            if _verify_gone(url, api_key, sleep, backoff_s, timeout_s):
                message = "instance destroyed (verified: gone twice in a row)"
                return DestroyResult(True, status, attempt, message)
            message = "DELETE accepted but the instance is still there: NOT destroyed"
        elif status is not None and status != 429 and 300 <= status < 500:
            return DestroyResult(False, status, attempt, "HTTP %d: NOT destroyed" % status)
        elif status is None:
            message = "%s: NOT destroyed" % answer.error
        else:
            message = "HTTP %d, no clear success: NOT destroyed" % status
        if attempt < retries:
            wait = answer.retry_after
            sleep(backoff_s * 2 ** (attempt - 1) if wait is None else wait)
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
