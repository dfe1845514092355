"""Garbage collection paced for a `serve` that holds thousands of runs' connections.

Why: CPython's full (generation 2) collection walks every tracked object, and a watched run
holds ~190 of them (its SSH connection, channels, scheduler job, settings): at 500 runs a full
pass took 145 ms of CPU here, at 5,000 about a second, during which the event loop stands still
and every check and exec in flight waits (the fleet bench saw an 825 ms GC pause as a 1.3 s
check). Such passes come whenever enough objects survived since the last one, i.e. every few
minutes.

What: every EVERY_S (a task core.service starts) the objects made since the last tick are
collected, then the survivors frozen (gc.freeze: left out of every later collection, still
freed by reference counting), so automatic passes walk only what is new: a few seconds' worth
(at 30 s a tick's own pass over 5,000 runs' scheduler jobs and answers still held the loop
~0.2 s). Once an hour everything is unfrozen and collected in one full pass, so cyclic garbage
frozen in between (a closed connection's objects) is reclaimed within the hour, not never.

Only `sleepwatch serve` uses it (core.root); tests and one-shot commands leave the collector
as it is.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime
from typing import Protocol

from core.ports import Clock

FULL_EVERY_S = 3600.0
EVERY_S = 5.0


class Collector(Protocol):
    """The parts of the `gc` module this uses (a test passes its own to see the calls)."""

    def collect(self) -> int: ...

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...


class GcPacer:
    def __init__(
        self,
        *,
        every_s: float = EVERY_S,
        full_every_s: float = FULL_EVERY_S,
        collector: Collector = gc,
    ) -> None:
        self.every_s = every_s
        self.full_every_s = full_every_s
        self._gc = collector
        self._full_at: datetime | None = None

    def tick(self, now: datetime) -> None:
        """Collect what is new and freeze the rest; hourly (and at the first tick), a full
        pass over everything first."""
        full = self._full_at is None or (now - self._full_at).total_seconds() >= self.full_every_s
        if full:
            self._gc.unfreeze()
            self._full_at = now
        self._gc.collect()  # after a freeze: only the objects made since it
        self._gc.freeze()

    async def run(self, stop: asyncio.Event, clock: Clock) -> None:
        """Tick every `every_s` until `stop` is set."""
        while not stop.is_set():
            self.tick(clock())
            await asyncio.sleep(self.every_s)
