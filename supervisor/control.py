"""Who owns a run dir (an flock on supervisor.lock) and the ctl channel to that owner.

ctl writes `control.json` atomically and sends SIGUSR1 to wake the supervisor; the supervisor
answers in `control.reply.json` with the same id. SIGTERM to the supervisor means `stop` too.

The owner's side is supervisor.runner (acquire_lock, take_command, route, reply); the asking
side is supervisor.__main__ (`ctl`: send_command).
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
import uuid
from typing import Any, Dict, Optional

from .fsutil import open_private, read_json, write_json_atomic
from .timeutil import iso_z, utcnow

LOCK_FILE = "supervisor.lock"
CONTROL_FILE = "control.json"
REPLY_FILE = "control.reply.json"
COMMANDS = ("kill-attempt", "stop")


def acquire_lock(run_dir: str) -> Optional[int]:
    """The locked fd (keep it open for the process's life), or None if a live owner holds it."""
    fd = open_private(os.path.join(run_dir, LOCK_FILE), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, b"%d\n" % os.getpid(), 0)
    return fd


def lock_holder(run_dir: str) -> Optional[int]:
    """The pid of the live supervisor owning run_dir, or None. The lock, not the pid file,
    decides: a stale pid left by a killed supervisor does not count."""
    path = os.path.join(run_dir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def send_command(run_dir: str, command: str, timeout_s: float) -> Dict[str, Any]:
    """Ask the owning supervisor to act; returns {"ok", "command", "message"}."""
    pid = lock_holder(run_dir)
    if pid is None or pid <= 0:
        return _answer(False, command, "no live supervisor owns %s" % run_dir, owner=False)
    request_id = uuid.uuid4().hex
    write_json_atomic(
        os.path.join(run_dir, CONTROL_FILE),
        {"id": request_id, "command": command, "at": iso_z(utcnow())},
    )
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        return _answer(False, command, "supervisor pid %d is gone" % pid, owner=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = _read_reply(run_dir)
        if reply is not None and reply.get("id") == request_id:
            return _answer(bool(reply.get("ok")), command, str(reply.get("message", "")))
        time.sleep(0.1)
    return _answer(
        False, command, "the supervisor (pid %d) did not answer in %.0f s" % (pid, timeout_s)
    )


def _answer(ok: bool, command: str, message: str, owner: bool = True) -> Dict[str, Any]:
    return {"ok": ok, "command": command, "message": message, "_owner": owner}


def _read_reply(run_dir: str) -> Optional[Dict[str, Any]]:
    try:
        doc = read_json(os.path.join(run_dir, REPLY_FILE))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def take_command(run_dir: str) -> Optional[Dict[str, Any]]:
    """Supervisor side: the pending request, removed so it is handled once."""
    path = os.path.join(run_dir, CONTROL_FILE)
    try:
        doc = read_json(path)
    except (OSError, ValueError):
        return None
    try:
        os.unlink(path)
    except OSError:
        pass
    if not isinstance(doc, dict) or doc.get("command") not in COMMANDS:
        return None
    return doc


def reply(run_dir: str, request: Dict[str, Any], ok: bool, message: str) -> None:
    write_json_atomic(
        os.path.join(run_dir, REPLY_FILE), {"id": request.get("id"), "ok": ok, "message": message}
    )


def route(run_dir: str, request: Dict[str, Any], phase: str, status: str) -> Optional[str]:
    """Where a ctl request read by the supervisor's tick goes: "stop" or "kill" for its
    attempt loop to act on, or None when it was answered here (nothing to act on)."""
    if request["command"] == "stop":
        if phase != "terminal":
            return "stop"
        reply(run_dir, request, True, "the run had already ended (%s)" % status)
    elif phase != "attempt":
        reply(run_dir, request, False, "no attempt is running (status %s)" % status)
    else:
        return "kill"
    return None
