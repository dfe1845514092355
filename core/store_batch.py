"""Group commit for core.store.Store.commit_check: the checks that finish while one transaction
is being written wait for the next one, so N checks together pay for one fsync, not N.

Why: the store syncs every commit to disk (PRAGMA synchronous = FULL, so that a message marked
sent stays marked after a power cut), ~8 ms each here; at 5,000 runs checked once a minute
(83 a second) one commit per check saturates the database thread and check latency grows
without bound. Each check keeps its own all-or-nothing (a savepoint inside the batch, see
Store); only the fsync is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Writes a batch; returns one outcome per item, in order: a result or the exception that item
# raises. Raising fails every item of the batch with that exception.
WriteBatch = Callable[[list[T]], Awaitable[list[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, write: WriteBatch[T, R]) -> None:
        self._write = write
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                outcomes = await self._write([item for item, _ in batch])
            except BaseException as exc:  # the whole batch failed (or the writer was cancelled)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(_fresh(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its caller was cancelled: the check is written all the same
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


def _fresh(exc: BaseException) -> BaseException:
    """The batch's error for one waiter (a CancelledError becomes one of its own)."""
    if isinstance(exc, asyncio.CancelledError):
        return asyncio.CancelledError()
    return exc
