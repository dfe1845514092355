"""Channel accounting for one SSH endpoint (host, port, user): which connection a new channel
goes on. Used by core/ssh.py's SshPool around every exec and SFTP session; knows nothing of
asyncssh (a connection is anything with `is_closed()`), so its rules are tested without I/O.

Why it exists (issue 16, "runs that share a machine"): an 8-GPU box running a sweep puts eight
runs on one endpoint, and each keeps a `supervisor wait` channel open for minutes. sshd allows
`MaxSessions` channels per connection (10 by default). So:
- a connection takes at most its limit of channels (the host's MaxSessions, lowered to what the
  server really granted when it refuses one: `refused`);
- lasting channels (wait) may take all but `reserve` of them: a probe, ctl or SFTP session
  never queues behind wait channels;
- when every connection is full for the kind asked, another connection to the same endpoint
  is opened (up to `max_connections`), and only past that does a caller wait for a free slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

DEFAULT_MAX_SESSIONS = 10  # stock sshd's MaxSessions
PROBE_RESERVE = 2  # channels per connection that lasting (wait) channels never take
MAX_CONNECTIONS = 8  # connections per endpoint at most


class Closable(Protocol):
    def is_closed(self) -> bool: ...


C = TypeVar("C", bound=Closable)


@dataclass(eq=False, slots=True)
class Lane(Generic[C]):
    """One connection and the channels open on it."""

    conn: C
    limit: int
    open: int = 0
    lasting: int = 0

    def fits(self, lasting: bool, reserve: int) -> bool:
        if self.conn.is_closed() or self.open >= self.limit:
            return False
        return not lasting or self.lasting < lasting_cap(self.limit, reserve)


def lasting_cap(limit: int, reserve: int) -> int:
    """How many lasting channels one connection of `limit` channels may hold: all but the
    reserve, and at least one (a server allowing one or two sessions still gets its waits,
    on connections of their own)."""
    return max(1, limit - reserve)


class Lanes(Generic[C]):
    """The connections to one endpoint. `acquire` returns a lane with one channel counted on
    it (opening a connection through `connect` when every lane is full); `release` gives it
    back. Callers bound the wait themselves (asyncio.timeout)."""

    def __init__(
        self,
        limit: int = DEFAULT_MAX_SESSIONS,
        *,
        reserve: int = PROBE_RESERVE,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.limit = max(1, limit)
        self.reserve = reserve
        self.max_connections = max(1, max_connections)
        self.lanes: list[Lane[C]] = []
        self.peak = 0
        self._freed = asyncio.Condition()
        self._connecting = asyncio.Lock()

    @property
    def open(self) -> int:
        return sum(lane.open for lane in self.lanes)

    def live(self) -> list[Lane[C]]:
        return [lane for lane in self.lanes if not lane.conn.is_closed()]

    def pick(self, lasting: bool) -> Lane[C] | None:
        """The lane a new channel goes on without a new connection: the fullest that fits
        (channels packed on few connections; an idle extra connection can be let go)."""
        self._drop_closed()
        fitting = [lane for lane in self.lanes if lane.fits(lasting, self.reserve)]
        if not fitting:
            return None
        return max(fitting, key=lambda lane: lane.open)

    def take(self, lane: Lane[C], lasting: bool) -> Lane[C]:
        lane.open += 1
        lane.lasting += lasting
        self.peak = max(self.peak, self.open)
        return lane

    async def acquire(self, lasting: bool, connect: Callable[[], Awaitable[C]]) -> Lane[C]:
        while True:
            lane = self.pick(lasting)
            if lane is not None:
                return self.take(lane, lasting)
            if len(self.live()) < self.max_connections:
                async with self._connecting:  # one connect at a time per endpoint
                    lane = self.pick(lasting)
                    if lane is None and len(self.live()) < self.max_connections:
                        lane = Lane(await connect(), self.limit)
                        self.lanes.append(lane)
                if lane is not None:
                    return self.take(lane, lasting)
                continue
            async with self._freed:
                await self._freed.wait()

    async def release(self, lane: Lane[C], lasting: bool) -> None:
        lane.open -= 1
        lane.lasting -= lasting
        async with self._freed:
            self._freed.notify_all()

    def refused(self, lane: Lane[C]) -> None:
        """The server refused a channel on `lane` with others open: its real limit is what it
        holds now (sshd's MaxSessions is lower than we were told). Called before `release`."""
        self.limit = lane.limit = max(1, lane.open - 1)

    def _drop_closed(self) -> None:
        # A closed connection's channels fail on their own and release their lane; a lane with
        # none left is forgotten.
        self.lanes = [lane for lane in self.lanes if lane.open or not lane.conn.is_closed()]
