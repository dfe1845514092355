"""The SSH adapter (asyncssh): one pooled connection per (host, port, user), shared by every
Transport of that host. asyncssh, socket and timeout errors become TransportError here.

Hygiene (issue 3): a connect timeout, keepalives (off by default in asyncssh), a timeout on
every exec and transfer, a few channels per connection (OpenSSH allows 10 sessions), and host
keys always verified (TOFU pins or a user's known_hosts: see core/hostkeys.py).
"""

from __future__ import annotations

import asyncio
import posixpath
import secrets
import shlex
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh

from core.capped import STDERR_KEEP_BYTES, drain_tail, read_capped, retrieve_exception
from core.errors import HostKeyMismatch, TransportError
from core.hostkeys import HostKeyPolicy, connect_verified
from core.models import ExecResult
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


class SshPool:
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

    async def transport(self, target: SshTarget) -> SshTransport:
        return SshTransport(self, target, self._options)

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


class SshTransport:
    """Transport over a pooled SSH connection. `close()` leaves the connection open: the pool
    owns it and other transports of the same host share it."""

    def __init__(self, pool: SshPool, target: SshTarget, options: SshOptions) -> None:
        self.label = target.label
        self._pool = pool
        self._target = target
        self._transfer_timeout_s = options.transfer_timeout_s
        self._kill_grace_s = options.remote_kill_grace_s
        self._max_output_bytes = options.max_output_bytes

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
    ) -> ExecResult:
        if not argv:
            raise ValueError("argv must not be empty")
        command = shlex.join(_with_remote_deadline(argv, timeout_s, self._kill_grace_s))
        cap = self._max_output_bytes if max_output_bytes is None else max_output_bytes
        async with self._pool.channel(self._target, timeout_s) as conn:
            result = await _exec(conn, command, stdin, cap)
        if result is None:
            raise TransportError(self.label, "channel closed before the command exited")
        return result

    async def put_tree(self, local_dir: Path, remote_dir: str) -> None:
        dirs, files = local_files(local_dir)
        async with self._sftp() as sftp:
            for rel in ["", *dirs]:
                await sftp.makedirs(posixpath.join(remote_dir, rel), exist_ok=True)
            for rel in files:
                await sftp.put(str(local_dir / rel), posixpath.join(remote_dir, rel))

    async def put_files(self, files: Sequence[tuple[Path, str]]) -> None:
        async with self._sftp() as sftp:
            for parent in sorted({posixpath.dirname(remote) for _, remote in files} - {""}):
                await sftp.makedirs(parent, exist_ok=True)
            for local, remote in files:
                await sftp.put(str(local), remote)

    async def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        parent = posixpath.dirname(remote_path)
        temp = f"{remote_path}.tmp-{secrets.token_hex(4)}"
        async with self._sftp() as sftp:
            if parent:
                await sftp.makedirs(parent, exist_ok=True)
            try:
                async with sftp.open(temp, "wb", asyncssh.SFTPAttrs(permissions=mode)) as f:
                    await f.write(data)
                await sftp.chmod(temp, mode)
                await sftp.posix_rename(temp, remote_path)
            except asyncssh.Error:
                with suppress(asyncssh.Error):
                    await sftp.remove(temp)
                raise

    async def close(self) -> None:
        return None

    @asynccontextmanager
    async def _sftp(self) -> AsyncIterator[asyncssh.SFTPClient]:
        async with self._pool.channel(self._target, self._transfer_timeout_s) as conn:
            async with conn.start_sftp_client() as sftp:
                yield sftp


async def _exec(
    conn: asyncssh.SSHClientConnection, command: str, stdin: bytes | None, cap: int
) -> ExecResult | None:
    """Run one command; None when the channel closed without an exit status or signal. At most
    `cap` bytes of stdout are read: past that the command is ended and `overflow` is set."""
    process = await conn.create_process(command, encoding=None)
    finished = False
    errors = asyncio.create_task(drain_tail(process.stderr, STDERR_KEEP_BYTES))
    errors.add_done_callback(retrieve_exception)
    try:
        if stdin:
            process.stdin.write(stdin)
        process.stdin.write_eof()
        stdout, overflow = await read_capped(process.stdout, cap)
        if overflow:
            errors.cancel()
            return ExecResult(-1, stdout, b"", overflow=True)  # `finally` ends the command
        stderr = await errors
        done = await process.wait()
        finished = True
    finally:
        errors.cancel()
        if not finished:
            # Timed out, cancelled or flooding: close the channel now, so no zombie session
            # keeps one of the host's few session slots. The signal is honoured for non-root
            # logins only.
            with suppress(asyncssh.Error, OSError, RuntimeError):
                process.send_signal("TERM")
            process.close()
    if done.returncode is None:
        return None
    return ExecResult(done.returncode, stdout, stderr)


def _with_remote_deadline(
    argv: Sequence[str], timeout_s: float, grace_s: float | None
) -> list[str]:
    if grace_s is None:
        return list(argv)
    # `timeout` exits 127 for a missing program too, so callers see what a bare shell says.
    return ["timeout", "-k", "5", f"{timeout_s + grace_s:.3f}", *argv]


def local_files(root: Path) -> tuple[list[str], list[str]]:
    """Relative directory and file paths under root (POSIX form), skipping __pycache__."""
    dirs: list[str] = []
    files: list[str] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        (dirs if path.is_dir() else files).append(rel.as_posix())
    return dirs, files


def _as_bytes(data: object) -> bytes:
    return data if isinstance(data, bytes) else b""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.DisconnectError | asyncssh.ChannelOpenError):
        return f"{type(exc).__name__}: {exc.reason}"
    return str(exc) or type(exc).__name__
