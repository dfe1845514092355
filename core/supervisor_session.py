"""The watcher's supervisor sessions (issue 16): one long-lived `supervisor session` per host
connection and upload, shared by every run on that host, so a check's probe is one line on an
open channel instead of a new SSH exec, and a run's wait is a watch on that same channel.

Built once by core.service.Service and handed to the Watcher (probes, acks) and each
RunWaiter (watches) through core.supervisor_client.SupervisorClient, which falls back to the
exec path whenever this answers None: no session yet, one that failed (retried with a bounded,
jittered backoff, never at every check), or one dropped because it answered something that
cannot be trusted (core/session_link.py). Session requests are counted apart from execs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import TransportError
from core.ports import Transport
from core.session_link import SessionLink, SessionLost, SessionRefused

log = logging.getLogger(__name__)

# A session that said nothing for this long beats (its answers and events count as beats); one
# silent for 3 beats and a grace is dropped (3 min 5 s). Shorter beats cost the watcher at
# 5,000 runs about as much as its checks, for a dead link found a couple of minutes sooner.
HEARTBEAT_S = 60.0
OPEN_TIMEOUT_S = 30.0
RETRY_INITIAL_S = 5.0
RETRY_MAX_S = 600.0
REQUEST_TIMEOUT_S = 30.0  # an in-process answer takes milliseconds: past this it is sick
STABLE_S = 300.0  # a session that lived this long before it broke starts its backoff afresh
WATCH_ACK_TIMEOUT_S = 30.0
EVENT_GRACE_S = 30.0  # past the watch's own timeout, its missing event means a sick session

_Key = tuple[str, tuple[str, ...]]


@dataclass(slots=True)
class _Entry:
    link: SessionLink | None = None
    opening: asyncio.Task[SessionLink | None] | None = None
    opened_at: float = 0.0
    failures: int = 0
    retry_at: float = 0.0


class SessionHub:
    """Sessions by (transport label, argv). `ask` and `watch` return None when the caller must
    use the exec path; they never raise for the session's sake."""

    def __init__(
        self,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        retry_initial_s: float = RETRY_INITIAL_S,
        retry_max_s: float = RETRY_MAX_S,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.heartbeat_s = heartbeat_s
        self.open_timeout_s = open_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.jitter = jitter
        self.requests: Counter[str] = Counter()  # session requests by command
        self.events: Counter[str] = Counter()  # pushed events heard, by kind
        self.counts: Counter[str] = Counter()  # opened, failed_open, lost, fallback
        self.problem: str | None = None  # why the last session was lost or refused
        self._entries: dict[_Key, _Entry] = {}

    async def ask(
        self,
        transport: Transport,
        argv: Sequence[str],
        cmd: str,
        req: dict[str, Any],
        timeout_s: float,
        *,
        repeatable: bool = True,
    ) -> dict[str, Any] | None:
        """The answer to one request on the host's session, or None (use the exec path).
        Not `repeatable` (a ctl): once it may have reached the supervisor, a lost session
        raises TransportError instead, so the exec path never sends it a second time."""
        link = await self.link(transport, argv)
        if link is None:
            self.counts["fallback"] += 1
            return None
        self.requests[cmd] += 1
        try:
            return await link.request(cmd, req, min(timeout_s, REQUEST_TIMEOUT_S))
        except (SessionLost, SessionRefused) as exc:
            self.problem = str(exc)
            if isinstance(exc, SessionLost) and exc.sent and not repeatable:
                raise TransportError(transport.label, f"{cmd} unanswered: {exc}") from None
            log.info("%s: %s; using an exec", transport.label, exc)
            self.counts["fallback"] += 1
            return None

    async def watch(
        self, transport: Transport, argv: Sequence[str], req: dict[str, Any], timeout_s: float
    ) -> dict[str, Any] | None:
        """The event pushed for `req["run_dir"]` (changed, quiet, timeout or missing, as
        `supervisor wait` answers), or None (use the exec path)."""
        link = await self.link(transport, argv)
        if link is None:
            return None
        run_dir = str(req["run_dir"])
        event = link.expect(run_dir)
        self.requests["watch"] += 1
        try:
            await link.request("watch", {**req, "timeout_s": timeout_s}, WATCH_ACK_TIMEOUT_S)
            async with asyncio.timeout(timeout_s + EVENT_GRACE_S):
                doc = await event
        except TimeoutError:
            link.drop(f"no event for a {timeout_s:g}s watch")
            return None
        except (SessionLost, SessionRefused) as exc:
            log.info("%s: %s; waiting by exec", transport.label, exc)
            return None
        except asyncio.CancelledError:
            link.unwatch_soon(run_dir)
            raise
        finally:
            link.forget(run_dir, event)
        self.events[str(doc.get("event"))[:20]] += 1
        return doc

    async def link(self, transport: Transport, argv: Sequence[str]) -> SessionLink | None:
        """The host's live session, opened now if none is and its backoff allows; else None."""
        if getattr(transport, "open_process", None) is None:
            return None  # a transport with no long-lived processes (a test's or bench's wrapper)
        entry = self._entries.setdefault((transport.label, tuple(argv)), _Entry())
        loop = asyncio.get_running_loop()
        if entry.link is not None:
            if entry.link.alive:
                return entry.link
            self._lost(entry, loop.time())
        if entry.opening is None:
            if loop.time() < entry.retry_at:
                return None
            entry.opening = asyncio.create_task(self._open(entry, transport, argv))
        return await asyncio.shield(entry.opening)

    async def close(self) -> None:
        for entry in self._entries.values():
            if entry.opening is not None:
                entry.opening.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.opening
            if entry.link is not None:
                await entry.link.close()
        self._entries.clear()

    def live(self) -> int:
        return sum(1 for e in self._entries.values() if e.link is not None and e.link.alive)

    async def _open(
        self, entry: _Entry, transport: Transport, argv: Sequence[str]
    ) -> SessionLink | None:
        loop = asyncio.get_running_loop()
        link = SessionLink(
            transport, argv, open_timeout_s=self.open_timeout_s, max_heartbeat_s=self.heartbeat_s
        )
        try:
            await link.start()
        except Exception as exc:  # no session there (an old supervisor, no channel): exec
            entry.failures += 1
            entry.retry_at = loop.time() + self._backoff_s(entry.failures)
            self.counts["failed_open"] += 1
            self.problem = str(exc)
            log.info("%s: no supervisor session (%s); execs until it opens", transport.label, exc)
            return None
        finally:
            entry.opening = None
        entry.link, entry.opened_at = link, loop.time()
        self.counts["opened"] += 1
        return link

    def _lost(self, entry: _Entry, now: float) -> None:
        assert entry.link is not None
        log.info("%s: supervisor session lost: %s", entry.link.transport.label, entry.link.why_lost)
        entry.failures = 1 if now - entry.opened_at >= STABLE_S else entry.failures + 1
        entry.retry_at = now + self._backoff_s(entry.failures)
        self.problem = entry.link.why_lost
        entry.link = None
        self.counts["lost"] += 1

    def _backoff_s(self, failures: int) -> float:
        """Doubling from retry_initial_s to retry_max_s, scaled by a jitter to 50-100 %."""
        base = min(self.retry_max_s, self.retry_initial_s * 2.0 ** min(failures - 1, 16))
        return base * (0.5 + 0.5 * min(max(self.jitter(), 0.0), 1.0))
