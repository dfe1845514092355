"""One live `supervisor session` (supervisor/session.py) on one host: the process, its reader,
and the requests and watches waiting for their lines.

Owned by core.supervisor_session.SessionHub (one per connection and upload); nothing else
makes one. Requests are multiplexed by id, each with its own timeout; pushed events go to the
run dir that asked to watch. The instance is untrusted: every line is read with a byte cap
and decoded by core.supervisor_answer.session_line, and a line that is too long, too deep,
NaN or not JSON, an EOF, a request that times out, or a heartbeat that does not come in time
drops the whole session (SessionLost to everyone waiting: they fall back to the exec path).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Sequence
from typing import Any

from core.capped import LineReader, LineTooLong
from core.errors import ProtocolError
from core.ports import Interactive, Transport
from core.supervisor_answer import ANSWER_MARK, session_line

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 4 * 1024 * 1024  # a probe's answer at most (64 KiB of log, escaped)
MAX_NOISE_LINES = 200  # login banner / .bashrc lines before ANSWER_MARK at most
MAX_UNASKED_LINES = 1000  # heartbeats and stray lines per heartbeat window: more is a flood
UNWATCH_TIMEOUT_S = 30.0
MISSED_BEATS = 3  # heartbeats missed in a row (plus a grace) before the session is dropped
BEAT_GRACE_S = 5.0


async def _exchange(
    proc: Interactive, line: str, answer: asyncio.Future[dict[str, Any]]
) -> dict[str, Any]:
    await proc.send(line.encode() + b"\n")
    return await answer


class SessionLost(ProtocolError):
    """The session is gone (or was dropped); the caller uses the exec path instead. `sent`:
    the request may have reached the supervisor (a ctl must then not be sent again)."""

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class SessionRefused(ProtocolError):
    """The session answered this request with an error (it lives on)."""


class SessionLink:
    def __init__(
        self,
        transport: Transport,
        argv: Sequence[str],
        *,
        open_timeout_s: float,
        max_heartbeat_s: float = 3600.0,
    ):
        self.transport = transport
        # the beat asked for: a hello promising a slower one is held to it (with SSH keepalives
        # idle, a hostile "3600" would leave a dead link unnoticed for three hours)
        self.max_heartbeat_s = max_heartbeat_s
        self.argv = list(argv)
        self.open_timeout_s = open_timeout_s
        self.hello: dict[str, Any] = {}
        self.heartbeat_s = 15.0
        self.why_lost = ""
        self._proc: Interactive | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._watches: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._unwatching: dict[str, asyncio.Task[None]] = {}
        self.unwatched = 0  # unwatches the far end answered
        self._heard_at = 0.0  # loop time of the last line read
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Open the process and read its hello. Raises TransportError or ProtocolError."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._main(ready))
        try:
            async with asyncio.timeout(self.open_timeout_s):
                await asyncio.shield(ready)
        except TimeoutError:
            await self.close()
            raise SessionLost(f"no session hello within {self.open_timeout_s:g}s") from None

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def request(self, cmd: str, req: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The answer object to `{"id", "cmd": cmd, **req}`. Raises SessionLost (and drops the
        session when it does not answer in `timeout_s`) or SessionRefused."""
        proc = self._proc
        if proc is None or not self.alive:
            raise SessionLost(self.why_lost or "session not open")
        req_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            line = json.dumps({"id": req_id, "cmd": cmd, **req}, allow_nan=False)
            doc = await self._guarded(_exchange(proc, line, future), timeout_s, cmd)
        except SessionLost as exc:
            raise SessionLost(str(exc), sent=True) from None
        finally:
            self._pending.pop(req_id, None)
        if "error" in doc:
            raise SessionRefused(f"session refused {cmd}: {str(doc['error'])[:200]}")
        answer = doc.get("answer")
        if not isinstance(answer, dict):
            self.drop(f"{cmd} answered a {type(answer).__name__}, not an object")
            raise SessionLost(self.why_lost)
        return answer

    def expect(self, run_dir: str) -> asyncio.Future[dict[str, Any]]:
        """The future of the next event pushed for `run_dir` (register before `watch`)."""
        pending = self._unwatching.pop(run_dir, None)
        if pending is not None:  # not sent yet: it would drop the watch about to be sent
            pending.cancel()  # (sent already: it reaches the far end before the new watch)
        old = self._watches.pop(run_dir, None)
        if old is not None and not old.done():
            old.set_exception(SessionLost("replaced by a newer watch"))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._watches[run_dir] = future
        return future

    def unwatch_soon(self, run_dir: str) -> None:
        """Drop `run_dir`'s watch on the far end too (its waiter was cancelled: the run ended
        or was dropped), without waiting: else the supervisor keeps stepping it until its
        timeout, and its event comes as a line nobody asked for."""
        if self.alive and run_dir not in self._unwatching:
            task = asyncio.create_task(self._unwatch(run_dir))
            self._unwatching[run_dir] = task
            task.add_done_callback(lambda done: self._unwatch_done(run_dir, done))

    def _unwatch_done(self, run_dir: str, task: asyncio.Task[None]) -> None:
        if self._unwatching.get(run_dir) is task:
            del self._unwatching[run_dir]

    async def _unwatch(self, run_dir: str) -> None:
        try:
            await self.request("unwatch", {"run_dir": run_dir}, UNWATCH_TIMEOUT_S)
        except (SessionLost, SessionRefused) as exc:  # e.g. serve stopping: each waiter went
            log.debug("%s: unwatch of %s: %s", self.transport.label, run_dir, exc)
        else:
            self.unwatched += 1

    def forget(self, run_dir: str, future: asyncio.Future[dict[str, Any]]) -> None:
        if self._watches.get(run_dir) is future:
            del self._watches[run_dir]

    def drop(self, why: str) -> None:
        if self._task is not None and not self._task.done():
            self.why_lost = why
            self._task.cancel()

    async def _guarded(self, awaitable: Any, timeout_s: float, cmd: str) -> Any:
        try:
            async with asyncio.timeout(timeout_s):
                return await awaitable
        except TimeoutError:
            self.drop(f"{cmd} got no answer within {timeout_s:g}s")
            raise SessionLost(self.why_lost) from None
        except (SessionLost, SessionRefused):
            raise
        except Exception as exc:  # the channel broke while sending (TransportError, OSError)
            self.drop(f"{cmd}: {exc}")
            raise SessionLost(self.why_lost) from exc

    async def _main(self, ready: asyncio.Future[None]) -> None:
        try:
            cm = self.transport.open_process(self.argv, open_timeout_s=self.open_timeout_s)
            async with cm as proc:
                reader = LineReader(proc, MAX_LINE_BYTES)
                await self._handshake(reader)
                self._proc = proc
                ready.set_result(None)
                await self._read(reader)
        except asyncio.CancelledError:
            self.why_lost = self.why_lost or "session closed"
        except LineTooLong as exc:
            self.why_lost = f"session line refused: {exc}"
        except Exception as exc:  # TransportError, ProtocolError, whatever the far end did
            self.why_lost = str(exc) or type(exc).__name__
        finally:
            self._lost(ready)

    async def _handshake(self, reader: LineReader) -> None:
        mark = ANSWER_MARK.decode()
        for _ in range(MAX_NOISE_LINES):
            line = await reader.line()
            if line is None:
                raise SessionLost("the session exited before its hello (an old supervisor?)")
            if line.decode("utf-8", "replace") == mark:
                break
        else:
            raise SessionLost(f"no answer mark in {MAX_NOISE_LINES} lines")
        hello = await reader.line()
        doc = session_line(hello or b"")
        if not isinstance(doc.get("session"), int):
            raise ProtocolError("the session's first line is not its hello")
        beat = doc.get("heartbeat_s")
        if isinstance(beat, int | float) and 0.05 <= beat <= 3600:
            self.heartbeat_s = min(float(beat), self.max_heartbeat_s)
        self.hello = doc

    async def _read(self, reader: LineReader) -> None:
        loop = asyncio.get_running_loop()
        miss_s = self.heartbeat_s * MISSED_BEATS + BEAT_GRACE_S
        window_at, unasked = loop.time(), 0
        # one watchdog, not a timeout per line: at 5,000 runs a timer armed and cancelled per
        # line was loop work for nothing
        self._heard_at = loop.time()
        self._watchdog = loop.call_later(miss_s, self._silence, miss_s)
        try:
            while True:
                line = await reader.line()
                self._heard_at = loop.time()
                if line is None:
                    raise SessionLost("the session ended (EOF)")
                if self._dispatch(session_line(line)):
                    continue
                if loop.time() - window_at > miss_s:
                    window_at, unasked = loop.time(), 0
                unasked += 1
                if unasked > MAX_UNASKED_LINES:  # each line is bounded, their number too
                    raise SessionLost(f"over {MAX_UNASKED_LINES} lines unasked in {miss_s:g}s")
        finally:
            self._watchdog.cancel()

    def _silence(self, miss_s: float) -> None:
        loop = asyncio.get_running_loop()
        quiet_s = loop.time() - self._heard_at
        if quiet_s >= miss_s:
            if self._proc is not None:
                self._proc.abort_link()
            self.drop(f"no line (heartbeat) for {miss_s:g}s; its link dropped")
        else:
            self._watchdog = loop.call_later(miss_s - quiet_s, self._silence, miss_s)

    def _dispatch(self, doc: dict[str, Any]) -> bool:
        """Hand an answer or event to whoever waits for it; False when nobody does."""
        req_id = doc.get("id")
        if isinstance(req_id, int) and req_id in self._pending:
            future = self._pending.pop(req_id)
            if not future.done():
                future.set_result(doc)
            return True
        if "event" in doc and isinstance(doc.get("run_dir"), str):
            waiting = self._watches.pop(doc["run_dir"], None)
            if waiting is not None and not waiting.done():
                waiting.set_result(doc)
                return True
        # heartbeats, errors without an id, answers nobody waits for: the line was news enough
        return False

    def _lost(self, ready: asyncio.Future[None]) -> None:
        self._proc = None
        lost = SessionLost(self.why_lost or "session ended")
        waiting: list[asyncio.Future[Any]] = [ready, *self._pending.values()]
        for future in [*waiting, *self._watches.values()]:
            if not future.done():
                future.set_exception(lost)
                future.exception()  # seen: one nobody awaits any more is not logged
        self._pending.clear()
        self._watches.clear()
