"""Watch the watcher from outside: a healthchecks.io-style ping URL (the adapter for it).

A GET on the URL after each healthy heartbeat of `serve`'s loop, a GET on `URL/fail` after a
broken one (a problem `sleepwatch health` would report: the store not writable, Telegram
refusing the token). When `serve` itself dies or hangs, the pings stop and the ping service
alerts the person, on a channel that does not depend on this process. Called by
core/service.py at each beat. At most one ping per `every_s` while nothing changes; a change
of health pings at once. A ping that fails (network, timeout, HTTP error) is logged once per
episode and never raised: it must never break the loop. The URL holds a secret (its UUID),
so it is never logged."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import aiohttp

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
EVERY_S = 60.0


class Pinger:
    def __init__(
        self,
        url: str,
        *,
        every_s: float = EVERY_S,
        timeout_s: float = TIMEOUT_S,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._every_s = every_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._owns_session = session is None
        self._last_at: datetime | None = None
        self._last_healthy: bool | None = None
        self._failing = False

    def __repr__(self) -> str:
        return "Pinger(url=**********)"

    def due(self, healthy: bool, now: datetime) -> bool:
        if self._last_at is None or healthy != self._last_healthy:
            return True
        return (now - self._last_at).total_seconds() >= self._every_s

    async def ping(self, healthy: bool, now: datetime) -> bool:
        """Ping if due; True when a ping was sent and answered 2xx. Never raises."""
        if not self.due(healthy, now):
            return False
        self._last_at, self._last_healthy = now, healthy
        url = self._url if healthy else f"{self._url}/fail"
        try:
            status = await self._get(url)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the ping is the ping's, never the loop's
            self._failed(f"{type(exc).__name__}: {_safe(str(exc), self._url)}")
            return False
        if not 200 <= status < 300:
            self._failed(f"HTTP {status}")
            return False
        if self._failing:
            log.warning("the health ping URL answers again")
        self._failing = False
        return True

    async def _get(self, url: str) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(url, timeout=self._timeout, allow_redirects=True) as resp:
            await resp.read()
            return resp.status

    def _failed(self, why: str) -> None:
        if not self._failing:
            log.warning("the health ping failed (%s); the loop goes on", why[:200])
        self._failing = True

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


def _safe(text: str, url: str) -> str:
    """aiohttp's errors quote the URL: keep its secret out of the log."""
    return text.replace(url, "<ping url>")
