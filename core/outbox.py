"""The outbox sender: drains stored messages to a Notifier, in order, at most one per `min_gap_s`.

Every message is stored before it is sent and marked sent after (a conditional update), so a
restart loses nothing; the only repeat possible is a crash between Telegram accepting a message
and the mark, a window of one HTTP round trip. A mark that fails (a full disk) is retried, and
the message is never sent again by this process meanwhile: the window then lasts until the mark
goes through. Alerts due together that were created within `coalesce_s` of each other go out as
one message. Terminal messages wait `hold_s` after this sender first saw them, so that runs
ending together are told in the order they ended (each is queued when its teardown is done).
A stopping service flushes what is due, holds off, for at most FLUSH_S.

Which rows go out together, and the retry backoff, are decided by core.batching (pure). Run by
core.service as a background task, woken when a check or a command queues a message; the
Notifier is chosen at the composition root (Telegram from bot/, else the console).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from core.batching import Batch, plan_batches
from core.batching import backoff_s as backoff_s
from core.batching import combine_alerts as combine_alerts
from core.errors import DeliveryError, StoreError
from core.models import MessageKind, OutboxItem
from core.ports import Clock, Notifier
from core.retry_after import retry_after_s

log = logging.getLogger(__name__)

PERMANENT_DEFER_S = 86400.0
CREDENTIALS_RETRY_S = 60.0
RETRY_AFTER_CAP_S = 3600.0  # Telegram's flood waits can be long, but never nan or a year
FLUSH_S = 10.0  # a stopping serve's last drain (systemd waits 90 s before its SIGKILL)


class OutboxStore(Protocol):
    """The part of core.store.Store the sender needs."""

    async def pending(self, now: datetime, limit: int = 50) -> list[OutboxItem]: ...

    async def mark_sent(self, item_id: int, at: datetime) -> bool: ...

    async def defer(self, item_id: int, until: datetime, error: str) -> None: ...


class OutboxSender:
    """Drains the outbox. `drain_once` for tests and ticks; `run` as the long-lived task.

    Failures: DeliveryError with retry_after_s defers the batch by exactly that and stops the
    drain; other transient errors defer by `backoff_s(attempts)` and stop the drain. Nothing
    later is sent before the failed batch (an in-memory gate, `not_before`). A permanent error
    defers its batch by a day with the error recorded (visible in the outbox, retried daily)
    and lets the queue move on, so one undeliverable message cannot block every later one.
    Refused credentials (a wrong or revoked token) are not the message's fault: the rows are
    left due (a restart with a working token sends them at once), this process tries again
    every `CREDENTIALS_RETRY_S`, and `credentials_refused` says why for `sleepwatch health`.
    """

    def __init__(
        self,
        store: OutboxStore,
        notifier: Notifier,
        clock: Clock,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        min_gap_s: float = 1.0,
        coalesce_s: float = 3.0,
        hold_s: float = 0.0,
        poll_s: float = 2.0,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._sleep = sleep
        self._min_gap_s = min_gap_s
        self._coalesce_s = coalesce_s
        self._hold_s = hold_s
        self._poll_s = poll_s
        self._last_delivery_at: datetime | None = None
        self.not_before: datetime | None = None  # a failed delivery's gate
        self._held_until: datetime | None = None  # a held batch's release (see _held)
        self.credentials_refused: DeliveryError | None = None
        # Delivered by this process, not yet marked sent (the mark failed): never sent again.
        self._unmarked: dict[int, datetime] = {}
        self._first_seen: dict[int, datetime] = {}  # terminal rows: when this sender saw them

    async def drain_once(self) -> int:
        """Deliver what is due, in id order. Returns how many rows were marked sent."""
        now = self._clock()
        if self.not_before is not None and now < self.not_before:
            return 0
        self.not_before = self._held_until = None
        sent = await self._retry_marks()
        items = [i for i in await self._store.pending(now) if i.id not in self._unmarked]
        self._first_seen = {i.id: self._first_seen.get(i.id, now) for i in items}
        for batch in plan_batches(items, self._coalesce_s):
            if self._held(batch, now):
                break
            outcome = await self._deliver(batch, items)
            if outcome is None:
                break
            sent += outcome
        return sent

    async def flush(self, timeout_s: float = FLUSH_S) -> int:
        """The last drain of a stopping service: what is due goes now, holds off (they wait for
        siblings, and no check is left to queue one), within `timeout_s` (a stop must not
        hang). A failure's gate still stands. Returns how many rows were marked sent; what is
        left waits in the store for the next start."""
        hold_s, self._hold_s = self._hold_s, 0.0
        try:
            return await asyncio.wait_for(self.drain_once(), timeout_s)
        except Exception as exc:  # a timeout or a failing store: nothing is lost
            log.warning("outbox not flushed: %s", exc or type(exc).__name__)
            return 0
        finally:
            self._hold_s = hold_s

    def _held(self, batch: Batch, now: datetime) -> bool:
        """A fresh alert waits `hold_s` so that siblings created just after it can join it; a
        terminal message waits as long after it was first seen, so that one of a run that
        ended earlier, queued just after, goes first. It and everything after it wait (the
        drain waits for its release time)."""
        kind = batch.message.kind
        if self._hold_s <= 0 or kind not in (MessageKind.ALERT, MessageKind.TERMINAL):
            return False
        since = batch.created_at
        if kind is MessageKind.TERMINAL:
            since = self._first_seen.get(batch.item_ids[0], now)
        release_at = since + timedelta(seconds=self._hold_s)
        if now < release_at:
            self._held_until = release_at
            return True
        return False

    async def _deliver(self, batch: Batch, items: list[OutboxItem]) -> int | None:
        await self._respect_gap()
        try:
            await self._notifier.deliver(batch.message)
        except DeliveryError as exc:
            return await self._failed(batch, items, exc)
        except Exception as exc:  # a notifier bug must not kill the sender: retry with backoff
            log.exception("notifier raised an unexpected error")
            return await self._failed(batch, items, DeliveryError(f"{type(exc).__name__}: {exc}"))
        at = self._clock()
        self._last_delivery_at = at
        self.credentials_refused = None
        for item_id in batch.item_ids:
            self._unmarked[item_id] = at
        return await self._retry_marks()

    async def _retry_marks(self) -> int:
        """Mark what this process delivered; a failed mark stays remembered for the next try."""
        marked = 0
        for item_id, at in list(self._unmarked.items()):
            try:
                marked += await self._store.mark_sent(item_id, at)
            except StoreError as exc:
                log.warning(
                    "outbox row %s was delivered but cannot be marked sent: %s", item_id, exc
                )
                return marked
            del self._unmarked[item_id]
        return marked

    @property
    def unmarked(self) -> int:
        """Rows delivered but not yet marked sent (their mark is retried each round)."""
        return len(self._unmarked)

    async def _respect_gap(self) -> None:
        if self._last_delivery_at is None:
            return
        elapsed_s = (self._clock() - self._last_delivery_at).total_seconds()
        if elapsed_s < self._min_gap_s:
            await self._sleep(self._min_gap_s - elapsed_s)

    async def _failed(
        self, batch: Batch, items: list[OutboxItem], exc: DeliveryError
    ) -> int | None:
        now = self._clock()
        if exc.credentials_refused:
            self.credentials_refused = exc
            self.not_before = now + timedelta(seconds=CREDENTIALS_RETRY_S)
            log.info("outbox waits for a token Telegram accepts: %s", exc)
            return None
        attempts = max(i.attempts for i in items if i.id in batch.item_ids)
        if exc.permanent:
            wait_s, error = PERMANENT_DEFER_S, f"permanent: {exc}"
            log.warning("outbox rows %s undeliverable, deferred a day: %s", batch.item_ids, exc)
        elif (asked_s := retry_after_s(exc.retry_after_s, RETRY_AFTER_CAP_S)) is not None:
            wait_s, error = asked_s, f"retry after {asked_s:g}s: {exc}"
        else:
            wait_s, error = backoff_s(attempts), f"transient: {exc}"
        until = now + timedelta(seconds=wait_s)
        if not exc.permanent:  # the gate first: a defer that cannot be written still waits
            self.not_before = until
        for item_id in batch.item_ids:
            await self._store.defer(item_id, until, error)
        if exc.permanent:
            return 0
        log.info("outbox delivery deferred %.1fs (%s)", wait_s, error)
        return None

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Drain, then wait for `wake`, `stop`, the gate's release or a short poll; until stop."""
        while not stop.is_set():
            wake.clear()  # before draining: a wake during the drain means "look again"
            try:
                await self.drain_once()
            except Exception:  # the store may be briefly locked; the next round retries
                log.exception("outbox drain failed")
            await _wait_any(stop, wake, self._next_wait_s())

    def _next_wait_s(self) -> float:
        gates = [at for at in (self.not_before, self._held_until) if at is not None]
        if not gates:
            return self._poll_s
        gate_s = (min(gates) - self._clock()).total_seconds()
        return max(0.05, min(self._poll_s, gate_s))


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
