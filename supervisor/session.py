"""`supervisor session`: one long-lived, two-way JSON-lines channel per watcher connection.

The watcher (core/supervisor_session.py) opens it once per SSH connection and keeps it open;
supervisor.__main__ (`session`) prints ANSWER_MARK and a hello line, then runs `serve`.

Requests come on stdin, one JSON object a line: `{"id": N, "cmd": ...}` with `probe`, `ctl`,
`ack` (answered in-process, on worker threads: supervisor/session_cmds.py), `watch` / `unwatch`
(a run dir stepped every POLL_S by supervisor/waiter.py's Watch: its answer is PUSHED as
`{"event": changed|quiet|timeout|missing, "run_dir": ..., "state": ...}`, once per watch), and
`ping`. Answers: `{"id": N, "answer": {...}}` or `{"id": N, "error": "..."}`: a bad line never
ends the session. `{"heartbeat": unix time}` every heartbeat_s tells the watcher the session
lives without SSH keepalives. Everything read is bounded (line length, watches, requests in
flight). The session ends when stdin closes (the channel went) or stdout breaks.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Dict, Optional

from .session_cmds import SLOW, BadRequest, arg, watch_args
from .waiter import Watch

SESSION_VERSION = 1
HEARTBEAT_S = 60.0  # the watcher says its own with --heartbeat
POLL_S = 0.5
MAX_LINE_BYTES = 64 * 1024
MAX_WATCHES = 256
MAX_IN_FLIGHT = 16
WORKERS = 4
READ_CHUNK = 65536


class Out:
    """One JSON object a line, whole lines only (worker threads answer too)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False
        self.wrote_at = time.monotonic()  # any line proves the session alive, a beat too

    def write(self, doc: Dict[str, Any]) -> None:
        try:
            text = json.dumps(doc, allow_nan=False)
        except (TypeError, ValueError) as exc:
            text = json.dumps({"id": doc.get("id"), "error": "unencodable answer: %s" % exc})
        with self._lock:
            try:
                self._stream.write(text + "\n")
                self._stream.flush()
                self.wrote_at = time.monotonic()
            except (OSError, ValueError):
                self.broken = True  # the watcher is gone: serve() ends


class Session:
    def __init__(self, out: Out, heartbeat_s: float = HEARTBEAT_S, poll_s: float = POLL_S):
        self.out = out
        self.heartbeat_s = max(0.05, heartbeat_s)
        self.poll_s = max(0.01, poll_s)
        self.watches: Dict[str, Watch] = {}
        self.in_flight = 0
        self._count = threading.Lock()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="session")
        self._buf = bytearray()
        self._skipping = False  # inside a line longer than MAX_LINE_BYTES

    def hello(self) -> Dict[str, Any]:
        return {
            "session": SESSION_VERSION,
            "pid": os.getpid(),
            "heartbeat_s": self.heartbeat_s,
            "max_line_bytes": MAX_LINE_BYTES,
            "max_watches": MAX_WATCHES,
        }

    def serve(self, fd: int) -> int:
        """Read requests from `fd` until EOF, stepping watches and beating meanwhile."""
        next_poll = next_beat = time.monotonic()
        try:
            while not self.out.broken:
                wait_s = max(0.0, min(next_poll, next_beat) - time.monotonic())
                readable, _, _ = select.select([fd], [], [], wait_s)
                if readable:
                    chunk = os.read(fd, READ_CHUNK)
                    if not chunk:
                        return 0  # stdin closed: the watcher (or its connection) went
                    self.feed(chunk)
                now = time.monotonic()
                if now >= next_poll:
                    self.poll(now, time.time())
                    next_poll = now + self.poll_s
                if now >= next_beat:
                    # only a session that said nothing for heartbeat_s beats: at 5,000 runs
                    # the beats of busy sessions cost the watcher as much as its checks
                    if now - self.out.wrote_at >= self.heartbeat_s:
                        self.out.write({"heartbeat": round(time.time(), 3)})
                    next_beat = self.out.wrote_at + self.heartbeat_s
            return 0
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def feed(self, chunk: bytes) -> None:
        """Split `chunk` into request lines; a line past MAX_LINE_BYTES is refused unread."""
        self._buf += chunk
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._skipping:
                self._skipping = False
                self.out.write(
                    {"id": None, "error": "request longer than %d bytes" % MAX_LINE_BYTES}
                )
            elif line.strip():
                self.handle(line)
        if len(self._buf) > MAX_LINE_BYTES:
            self._buf.clear()
            self._skipping = True

    def handle(self, line: bytes) -> None:
        req_id: Any = None
        try:
            req = _decode(line)
            req_id = req.get("id")
            if req_id is not None and (not isinstance(req_id, int) or isinstance(req_id, bool)):
                req_id = None
                raise BadRequest("id must be an integer")
            self.dispatch(req_id, arg(req, "cmd", str), req)
        except BadRequest as exc:
            self.out.write({"id": req_id, "error": str(exc)[:500]})
        except Exception as exc:  # a bug must not end the session either
            self.out.write({"id": req_id, "error": "%s: %s" % (type(exc).__name__, exc)})

    def dispatch(self, req_id: Any, cmd: str, req: Dict[str, Any]) -> None:
        if cmd in SLOW:
            with self._count:
                if self.in_flight >= MAX_IN_FLIGHT:
                    raise BadRequest("busy: %d requests in flight" % MAX_IN_FLIGHT)
                self.in_flight += 1
            self._pool.submit(self._answer, req_id, cmd, req)
            return
        if cmd == "watch":
            run_dir, status, attempt, quiet_s, timeout_s = watch_args(req)
            if run_dir not in self.watches and len(self.watches) >= MAX_WATCHES:
                raise BadRequest("already watching %d run dirs" % MAX_WATCHES)
            now = time.monotonic()
            self.watches[run_dir] = Watch(run_dir, status, attempt, quiet_s, timeout_s, now)
            answer: Dict[str, Any] = {"ok": True, "watching": len(self.watches)}
        elif cmd == "unwatch":
            found = self.watches.pop(arg(req, "run_dir", str), None) is not None
            answer = {"ok": True, "was_watching": found, "watching": len(self.watches)}
        elif cmd == "ping":
            answer = {"ok": True}
        else:
            raise BadRequest("unknown cmd %r" % cmd[:40])
        self.out.write({"id": req_id, "answer": answer})

    def _answer(self, req_id: Any, cmd: str, req: Dict[str, Any]) -> None:
        try:
            self.out.write({"id": req_id, "answer": SLOW[cmd](req)})
        except BadRequest as exc:
            self.out.write({"id": req_id, "error": str(exc)[:500]})
        except Exception as exc:
            self.out.write({"id": req_id, "error": "%s: %s" % (type(exc).__name__, exc)})
        finally:
            with self._count:
                self.in_flight -= 1

    def poll(self, now_mono: float, now_wall: float) -> None:
        """One step of every watch; each one that has its answer is pushed and forgotten."""
        for run_dir, watch in list(self.watches.items()):
            try:
                done = watch.step(now_mono, now_wall)
            except Exception as exc:  # an unreadable run dir is that run's news, not the end
                done = {"reason": "missing", "state": None, "error": str(exc)[:300]}
            if done is not None:
                del self.watches[run_dir]
                self.out.write({"event": done.pop("reason"), "run_dir": run_dir, **done})


def _decode(line: bytes) -> Dict[str, Any]:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("not JSON (%s)" % type(exc).__name__) from None
    if not isinstance(doc, dict):
        raise BadRequest("a request is a JSON object")
    return doc


def run_session(out_stream: IO[str], fd: int, heartbeat_s: float, first: Optional[str]) -> int:
    """`first`: written before the hello (ANSWER_MARK when framed)."""
    out = Out(out_stream)
    session = Session(out, heartbeat_s)
    if first is not None:
        out_stream.write(first)
    out.write(session.hello())
    return session.serve(fd)
