"""`start`: double fork into a new session, stdio to RUN_DIR/supervisor.log, report readiness.

The parent returns only once the daemon holds the run dir's lock and has written state.json
(or has refused), so `{"ok": true, "pid": N}` is a fact, not a hope.

Called by supervisor.__main__ for `start`.
"""

from __future__ import annotations

import json
import os
import select
import sys
from typing import Any, Callable, Dict

from .fsutil import open_private

READY_TIMEOUT_S = 20.0


def start_daemon(
    run_dir: str, body: Callable[[Callable[[Dict[str, Any]], None]], int]
) -> Dict[str, Any]:
    """Run `body(ready)` in a daemon; return what it passed to `ready` (in the parent)."""
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_fd)
        os.waitpid(first, 0)
        return _await_ready(read_fd)
    os.close(read_fd)
    try:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        _redirect_stdio(os.path.join(run_dir, "supervisor.log"))
        code = body(lambda doc: _send_ready(write_fd, doc))
    except BaseException:  # noqa: B036 - a daemon must never fall back into the caller's code
        import traceback

        traceback.print_exc()
        code = 1
    os._exit(code)


def _redirect_stdio(log_path: str) -> None:
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDONLY)
    log = open_private(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115


def _send_ready(fd: int, doc: Dict[str, Any]) -> None:
    try:
        os.write(fd, json.dumps(doc).encode() + b"\n")
    finally:
        os.close(fd)


def _await_ready(fd: int) -> Dict[str, Any]:
    data = b""
    try:
        while b"\n" not in data:
            readable, _, _ = select.select([fd], [], [], READY_TIMEOUT_S)
            if not readable:
                return {"ok": False, "message": "the daemon did not report ready in time"}
            block = os.read(fd, 4096)
            if not block:
                break
            data += block
    finally:
        os.close(fd)
    try:
        return json.loads(data.decode())
    except ValueError:
        return {"ok": False, "message": "the daemon exited before it was ready; see supervisor.log"}
