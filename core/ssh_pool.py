"""The SSH connection pool (asyncssh): one lazily made connection per (host, port, user),
shared by every transport of that host, with a few channel slots each, connect backoff and
host-key blocking. asyncssh, socket and timeout errors become TransportError here.

Used only by core.ssh (SshPool adds `transport()`, SshTransport borrows a channel per exec or
transfer); the composition root (core.runtime) builds the one pool of a process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh

from core.errors import HostKeyMismatch, TransportError
from core.hostkeys import HostKeyPolicy, connect_verified
from core.ports import Clock

_ConnKey = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class SshTarget:
    host: str
    port: int
    user: str
    key_path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SshOptions:
    connect_timeout_s: float = 15.0
    keepalive_interval_s: float = 30.0
    keepalive_count_max: int = 3
    max_channels: int = 4
    transfer_timeout_s: float = 300.0
    # sshd ignores signal requests on root logins (the usual case on rented GPU hosts), so a
    # timed-out command would outlive its closed channel: coreutils `timeout` on the remote
    # side ends it this long after our own deadline. None sends the command unwrapped.
    remote_kill_grace_s: float | None = 5.0
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 300.0
    # stdout beyond this is never held in memory: the command is ended and the result says
    # `overflow` (a compromised instance answering 700 MB would otherwise grow the watcher)
    max_output_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HostStats:
    connects: int
    failed_connects: int
    channels_open: int
    channels_peak: int


@dataclass(slots=True)
class _Slot:
    semaphore: asyncio.Semaphore
    lock: asyncio.Lock
    conn: asyncssh.SSHClientConnection | None = None
    connects: int = 0
    failed_connects: int = 0
    failures_in_row: int = 0
    retry_at: datetime | None = None
    last_error: TransportError | None = None
    blocked: HostKeyMismatch | None = None
    channels_open: int = 0
    channels_peak: int = 0

    def live(self) -> asyncssh.SSHClientConnection | None:
        return self.conn if self.conn is not None and not self.conn.is_closed() else None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SshConnections:
    """Lazily connected, shared SSH connections. A dropped connection is replaced on the next
    call; failed connects back off (doubling, capped) and calls inside the backoff are refused
    at once. A changed host key blocks the host until `reset(target)`."""

    def __init__(
        self,
        pin_file: Path,
        *,
        known_hosts: Path | None = None,
        options: SshOptions | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self._policy = HostKeyPolicy(pin_file, known_hosts)
        self._options = options or SshOptions()
        self._clock = clock
        self._slots: dict[_ConnKey, _Slot] = {}

    def stats(self, target: SshTarget) -> HostStats:
        s = self._slot(target)
        return HostStats(s.connects, s.failed_connects, s.channels_open, s.channels_peak)

    def reset(self, target: SshTarget) -> None:
        """Forget the host's failures and key block (after a human re-pinned its key)."""
        slot = self._slot(target)
        slot.blocked, slot.retry_at, slot.failures_in_row = None, None, 0

    async def close(self) -> None:
        conns = [s.conn for s in self._slots.values() if s.conn is not None]
        for slot in self._slots.values():
            slot.conn = None
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()

    @asynccontextmanager
    async def channel(
        self, target: SshTarget, timeout_s: float
    ) -> AsyncIterator[asyncssh.SSHClientConnection]:
        """A connection with one of its channel slots held for the body. `timeout_s` bounds
        waiting for the slot and the body, not the connect (connect_timeout_s does)."""
        slot = self._slot(target)
        conn = await self._connected(target, slot)
        try:
            async with asyncio.timeout(timeout_s), slot.semaphore:
                slot.channels_open += 1
                slot.channels_peak = max(slot.channels_peak, slot.channels_open)
                try:
                    yield conn
                finally:
                    slot.channels_open -= 1
        except TimeoutError:
            raise TransportError(target.label, f"timed out after {timeout_s:g}s") from None
        except (asyncssh.Error, OSError) as exc:
            if conn.is_closed():
                slot.conn = None
            raise TransportError(target.label, _describe(exc)) from exc

    def _slot(self, target: SshTarget) -> _Slot:
        key = (target.host, target.port, target.user)
        if key not in self._slots:
            semaphore = asyncio.Semaphore(self._options.max_channels)
            self._slots[key] = _Slot(semaphore, asyncio.Lock())
        return self._slots[key]

    async def _connected(self, target: SshTarget, slot: _Slot) -> asyncssh.SSHClientConnection:
        conn = slot.live()
        if conn is not None:
            return conn
        async with slot.lock:
            conn = slot.live()
            if conn is not None:
                return conn
            self._refuse_if_backing_off(target, slot)
            try:
                conn = await self._connect(target)
            except TransportError as exc:
                self._record_failure(slot, exc)
                raise
            slot.conn, slot.retry_at, slot.failures_in_row = conn, None, 0
            slot.connects += 1
            return conn

    async def _connect(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        opts = self._options
        keys = {"client_keys": [str(target.key_path)]} if target.key_path else {}
        try:
            return await connect_verified(
                self._policy,
                target.label,
                target.host,
                target.port,
                username=target.user,
                config=None,  # never let ~/.ssh/config rewrite host, port or key checking
                connect_timeout=opts.connect_timeout_s,
                keepalive_interval=opts.keepalive_interval_s,
                keepalive_count_max=opts.keepalive_count_max,
                **keys,
            )
        except TransportError:
            raise
        except asyncssh.PermissionDenied as exc:
            reason = f"authentication refused for {target.user}: {exc.reason}"
            raise TransportError(target.label, reason, permanent=True) from exc
        except (asyncssh.Error, OSError) as exc:  # TimeoutError is an OSError
            raise TransportError(target.label, f"connect failed: {_describe(exc)}") from exc

    def _refuse_if_backing_off(self, target: SshTarget, slot: _Slot) -> None:
        if slot.blocked is not None:
            raise HostKeyMismatch(target.label, slot.blocked.reason)
        if slot.retry_at is None or self._clock() >= slot.retry_at:
            return
        last = slot.last_error.reason if slot.last_error else "unknown"
        when = slot.retry_at.strftime("%H:%M:%SZ")
        permanent = slot.last_error.permanent if slot.last_error else False
        reason = f"not reconnecting before {when} ({slot.failures_in_row} failed; last: {last})"
        raise TransportError(target.label, reason, permanent=permanent)

    def _record_failure(self, slot: _Slot, exc: TransportError) -> None:
        if isinstance(exc, HostKeyMismatch):
            slot.blocked = exc
        slot.failed_connects += 1
        slot.failures_in_row += 1
        slot.last_error = exc
        opts = self._options
        doublings = min(slot.failures_in_row - 1, 32)
        delay_s = min(opts.backoff_initial_s * 2**doublings, opts.backoff_max_s)
        slot.retry_at = self._clock() + timedelta(seconds=delay_s)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.DisconnectError | asyncssh.ChannelOpenError):
        return f"{type(exc).__name__}: {exc.reason}"
    return str(exc) or type(exc).__name__
