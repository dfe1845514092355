"""The SSH connection pool (asyncssh): lazily made connections per (host, port, user), shared
by every transport of that host, with as many channels each as the server's MaxSessions (wait
channels kept off the probes' reserve, a further connection when one is full: see
core/ssh_channels.py), connect backoff and host-key blocking. asyncssh, socket and timeout
errors become TransportError here.

Used only by core.ssh (SshPool adds `transport()`, SshTransport borrows a channel per exec or
transfer); the composition root (core.runtime) builds the one pool of a process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh

from core.errors import HostKeyMismatch, TransportError
from core.hostkeys import HostKeyPolicy, connect_verified
from core.ports import Clock
from core.ssh_channels import DEFAULT_MAX_SESSIONS, MAX_CONNECTIONS, Lanes

_ConnKey = tuple[str, int, str]
# Ciphers offered, best first. AES-GCM leads (asyncssh's own first choice is chacha20-poly1305):
# with the AES instructions every server CPU has, it costs the watcher ~0.4 ms less CPU per exec
# (~1.2 ms against ~0.8 ms measured here), a third of a bare exec's cost. The rest of
# asyncssh's defaults follow, so a server without AES-GCM still connects.
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


@dataclass(frozen=True, slots=True)
class SshTarget:
    host: str
    port: int
    user: str
    key_path: Path | None = None
    # the host's sshd MaxSessions when it is not the pool's default (a per-host setting)
    max_sessions: int | None = None

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SshOptions:
    connect_timeout_s: float = 15.0
    keepalive_interval_s: float = 30.0
    keepalive_count_max: int = 3
    # channels per connection: the server's MaxSessions (stock sshd: 10). A server that
    # refuses a channel below it teaches the pool its real limit.
    max_sessions: int = DEFAULT_MAX_SESSIONS
    # connections per (host, port, user) at most: a second one opens when the first is full
    max_connections: int = MAX_CONNECTIONS
    # connects in progress at once, all hosts together (a restart resuming thousands of runs
    # must not start thousands of key exchanges at once: most would time out)
    max_connecting: int = 32
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
    encryption_algs: tuple[str, ...] = CIPHERS


@dataclass(frozen=True, slots=True)
class HostStats:
    connects: int
    failed_connects: int
    channels_open: int
    channels_peak: int
    connections: int = 1
    limit: int = DEFAULT_MAX_SESSIONS


_Conn = asyncssh.SSHClientConnection


@dataclass(slots=True)
class _Slot:
    lanes: Lanes[_Conn]
    connects: int = 0
    failed_connects: int = 0
    failures_in_row: int = 0
    retry_at: datetime | None = None
    last_error: TransportError | None = None
    blocked: HostKeyMismatch | None = None


class ChannelRefused(TransportError):
    """The server refused a channel for want of sessions; the pool learned its limit."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SshConnections:
    """Lazily connected, shared SSH connections. A dropped connection is replaced on the next
    call; failed connects back off (doubling, capped) and calls inside the backoff are refused
    at once. A changed host key blocks the host for the rest of the process (a human
    re-pins the key, then restarts the watcher)."""

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
        self._beating: dict[asyncssh.SSHClientConnection, int] = {}  # sessions per connection
        self._connecting = asyncio.Semaphore(self._options.max_connecting)

    def stats(self, target: SshTarget) -> HostStats:
        s = self._slot(target)
        lanes = s.lanes
        live = len(lanes.live())
        return HostStats(s.connects, s.failed_connects, lanes.open, lanes.peak, live, lanes.limit)

    async def close(self) -> None:
        conns = [lane.conn for s in self._slots.values() for lane in s.lanes.lanes]
        for slot in self._slots.values():
            slot.lanes.lanes = []
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()

    @asynccontextmanager
    async def channel(
        self, target: SshTarget, timeout_s: float, *, lasting: bool = False, hold: bool = False
    ) -> AsyncIterator[asyncssh.SSHClientConnection]:
        """A connection with one of its channels held for the body. `timeout_s` bounds waiting
        for the channel and the body; a connect, when one is needed, has connect_timeout_s.
        `lasting`: a channel held for minutes (a wait), kept off the probes' reserve. `hold`:
        `timeout_s` bounds getting the channel only, not the body (a session's life). Raises
        ChannelRefused when the server refused the channel for want of sessions (its
        MaxSessions is now known: try again)."""
        slot = self._slot(target)
        lanes = slot.lanes
        if target.max_sessions is not None and not lanes.lanes:
            lanes.limit = target.max_sessions
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                lane = await lanes.acquire(lasting, lambda: self._connected(target, slot))
                if hold:
                    deadline.reschedule(None)
                try:
                    yield lane.conn
                except asyncssh.ChannelOpenError as exc:
                    if lane.conn.is_closed() or lane.open < 2:
                        raise
                    lanes.refused(lane)
                    raise ChannelRefused(target.label, _describe(exc)) from exc
                finally:
                    await lanes.release(lane, lasting)
        except TimeoutError:
            raise TransportError(target.label, f"timed out after {timeout_s:g}s") from None
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(target.label, _describe(exc)) from exc

    @contextmanager
    def keepalive_idle(self, conn: asyncssh.SSHClientConnection) -> Iterator[None]:
        """For the body, a process on `conn` proves the link with its own heartbeat (the
        supervisor session beats after 60 s of silence, and its watcher drops it when a beat
        is missed): SSH keepalives idle on `conn` meanwhile, and resume when the last such
        process ends. At 5,000 runs a keepalive round trip per connection and minute cost as
        much packet work as the checks' own requests."""
        self._beating[conn] = self._beating.get(conn, 0) + 1
        if self._beating[conn] == 1:
            conn.set_keepalive(interval=0)
        try:
            yield
        finally:
            self._beating[conn] -= 1
            if not self._beating[conn]:
                del self._beating[conn]
                if not conn.is_closed():
                    conn.set_keepalive(interval=self._options.keepalive_interval_s)

    def _slot(self, target: SshTarget) -> _Slot:
        key = (target.host, target.port, target.user)
        if key not in self._slots:
            limit = target.max_sessions or self._options.max_sessions
            self._slots[key] = _Slot(Lanes(limit, max_connections=self._options.max_connections))
        return self._slots[key]

    async def _connected(self, target: SshTarget, slot: _Slot) -> asyncssh.SSHClientConnection:
        """A new connection to the endpoint (Lanes serialises these per endpoint)."""
        self._refuse_if_backing_off(target, slot)
        try:
            async with self._connecting:
                conn = await self._connect(target)
        except TransportError as exc:
            self._record_failure(slot, exc)
            raise
        slot.retry_at, slot.failures_in_row = None, 0
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
                encryption_algs=list(opts.encryption_algs),
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
