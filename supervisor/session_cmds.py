"""The requests a `supervisor session` answers in-process: each one's arguments read from the
request object (typed, bounded: the watcher's lines are trusted no more than any input) and
the same function the CLI command calls.

Called by supervisor.session for every request line; the answers are what `probe`, `ctl` and
`ack` print on the exec path (core/supervisor_client.py reads both the same way).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .control import COMMANDS

MAX_LOG_BYTES = 1024 * 1024  # a probe's log chunk at most (the watcher asks for 64 KiB)
MAX_TAIL_LINES = 1000
MAX_TEXT = 4096  # run dirs, watcher ids, statuses: any longer is refused
MAX_TIMEOUT_S = 86400.0
_MISSING = object()


class BadRequest(Exception):
    """A request that cannot be answered: its line gets an error, the session lives on."""


def arg(req: Dict[str, Any], name: str, kind: type, default: Any = _MISSING) -> Any:
    """`req[name]` of type `kind` (None allowed when the default is None), bounded."""
    value = req.get(name, _MISSING)
    if value is _MISSING or (value is None and default is None):
        if default is _MISSING:
            raise BadRequest("%s is required" % name)
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest("%s must be %s" % (name, kind.__name__))
    if isinstance(value, str) and (len(value) > MAX_TEXT or "\x00" in value):
        raise BadRequest("%s is too long or holds NUL" % name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (0 <= value <= 2**53):  # also refuses NaN
            raise BadRequest("%s out of range" % name)
    return value


def probe(req: Dict[str, Any]) -> Dict[str, Any]:
    from .probe import snapshot

    return snapshot(
        arg(req, "run_dir", str),
        arg(req, "attempt", int, None),
        arg(req, "offset", int, 0),
        min(arg(req, "max_bytes", int, 65536), MAX_LOG_BYTES),
        min(arg(req, "tail_lines", int, 40), MAX_TAIL_LINES),
        arg(req, "ack", str, None),
        metrics=arg(req, "metrics", bool, False),
    )


def ctl(req: Dict[str, Any]) -> Dict[str, Any]:
    from .control import send_command

    command = arg(req, "command", str)
    if command not in COMMANDS:
        raise BadRequest("command must be one of %s" % ", ".join(COMMANDS))
    timeout_s = min(arg(req, "timeout_s", float, 30.0), 120.0)
    doc = send_command(arg(req, "run_dir", str), command, timeout_s)
    doc.pop("_owner", None)
    return doc


def ack(req: Dict[str, Any]) -> Dict[str, Any]:
    from .probe import write_stored_ack

    return write_stored_ack(
        arg(req, "run_dir", str),
        arg(req, "watcher", str),
        arg(req, "status", str),
        arg(req, "attempt", int),
        arg(req, "ended_at", str),
    )


# answered on a worker thread: a ctl waits up to its timeout for the supervisor to act
SLOW: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {
    "probe": probe,
    "ctl": ctl,
    "ack": ack,
}


def watch_args(req: Dict[str, Any]) -> tuple:
    """(run_dir, status, attempt, quiet_s or None, timeout_s) of a `watch` request."""
    quiet: Optional[float] = arg(req, "quiet_s", float, None)
    timeout_s = min(arg(req, "timeout_s", float, 300.0), MAX_TIMEOUT_S)
    return (
        arg(req, "run_dir", str),
        arg(req, "status", str),
        arg(req, "attempt", int),
        quiet,
        timeout_s,
    )
