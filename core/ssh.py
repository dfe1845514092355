"""The SSH adapter (asyncssh): SshTransport runs one command or one SFTP transfer on a
channel of a pooled connection (core.ssh_pool), with a timeout on every exec and transfer,
stdout capped, and a remote `timeout` so a command cannot outlive its closed channel.

Built by the composition root (core.runtime: `SshPool.transport(target)` per run) and used
through the Transport port by the supervisor client, launch and collect.

Hygiene (issue 3): a connect timeout, keepalives (off by default in asyncssh), a timeout on
every exec and transfer, and host keys always verified (TOFU pins or a user's known_hosts: see
core/hostkeys.py). Channels per connection follow the server's MaxSessions, with room kept for
probes beside long-lived wait channels (core/ssh_channels.py); a channel the server refused is
tried again on another connection.
"""

from __future__ import annotations

import asyncio
import posixpath
import secrets
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TypeVar

import asyncssh

from core.capped import STDERR_KEEP_BYTES, drain_tail, read_capped, retrieve_exception
from core.errors import TransportError
from core.models import ExecResult
from core.ssh_pool import ChannelRefused, SshConnections
from core.ssh_pool import HostStats as HostStats
from core.ssh_pool import SshOptions as SshOptions
from core.ssh_pool import SshTarget as SshTarget

REFUSED_RETRIES = 3
T = TypeVar("T")


class SshPool(SshConnections):
    """Lazily connected, shared SSH connections (see SshConnections) that hand out transports."""

    async def transport(self, target: SshTarget) -> SshTransport:
        return SshTransport(self, target, self._options)


class SshTransport:
    """Transport over a pooled SSH connection. `close()` leaves the connection open: the pool
    owns it and other transports of the same host share it."""

    def __init__(self, pool: SshConnections, target: SshTarget, options: SshOptions) -> None:
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
        lasting: bool = False,
    ) -> ExecResult:
        if not argv:
            raise ValueError("argv must not be empty")
        command = shlex.join(_with_remote_deadline(argv, timeout_s, self._kill_grace_s))
        cap = self._max_output_bytes if max_output_bytes is None else max_output_bytes

        async def attempt() -> ExecResult | None:
            async with self._pool.channel(self._target, timeout_s, lasting=lasting) as conn:
                return await _exec(conn, command, stdin, cap)

        result = await _elsewhere_when_refused(attempt)
        if result is None:
            raise TransportError(self.label, "channel closed before the command exited")
        return result

    @asynccontextmanager
    async def open_process(
        self, argv: Sequence[str], *, open_timeout_s: float
    ) -> AsyncIterator[SshInteractive]:
        if not argv:
            raise ValueError("argv must not be empty")
        command = shlex.join(argv)  # no remote `timeout`: it lives until we close its stdin
        pool, target = self._pool, self._target
        async with pool.channel(target, open_timeout_s, lasting=True, hold=True) as conn:
            async with asyncio.timeout(open_timeout_s):
                process = await conn.create_process(command, encoding=None)
            errors = asyncio.create_task(drain_tail(process.stderr, STDERR_KEEP_BYTES))
            errors.add_done_callback(retrieve_exception)
            try:
                with pool.keepalive_idle(conn):
                    yield SshInteractive(process, conn)
            finally:
                errors.cancel()
                with suppress(asyncssh.Error, OSError, RuntimeError):
                    process.stdin.write_eof()
                process.close()  # the channel goes: sshd closes the process's stdin

    async def put_tree(self, local_dir: Path, remote_dir: str) -> None:
        dirs, files = local_files(local_dir)

        async def put(sftp: asyncssh.SFTPClient) -> None:
            for rel in ["", *dirs]:
                await sftp.makedirs(posixpath.join(remote_dir, rel), exist_ok=True)
            for rel in files:
                await sftp.put(str(local_dir / rel), posixpath.join(remote_dir, rel))

        await self._on_sftp(put)

    async def put_files(self, files: Sequence[tuple[Path, str]]) -> None:
        async def put(sftp: asyncssh.SFTPClient) -> None:
            for parent in sorted({posixpath.dirname(remote) for _, remote in files} - {""}):
                await sftp.makedirs(parent, exist_ok=True)
            for local, remote in files:
                # whole or not at all: other runs' probes on this host import these modules
                # while a launch rewrites them (a sweep launched on one 8-GPU box)
                temp = f"{remote}.tmp-{secrets.token_hex(4)}"
                try:
                    await sftp.put(str(local), temp)
                    await sftp.posix_rename(temp, remote)
                except asyncssh.Error:
                    with suppress(asyncssh.Error):
                        await sftp.remove(temp)
                    raise

        await self._on_sftp(put)

    async def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        parent = posixpath.dirname(remote_path)
        temp = f"{remote_path}.tmp-{secrets.token_hex(4)}"

        async def put(sftp: asyncssh.SFTPClient) -> None:
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

        await self._on_sftp(put)

    @asynccontextmanager
    async def open_read(self, remote_path: str, *, timeout_s: float) -> AsyncIterator[SftpReader]:
        # lasting: a pull may hold its channel for an hour; the probes keep their reserve
        async with self._pool.channel(self._target, timeout_s, lasting=True) as conn:
            async with conn.start_sftp_client() as sftp, sftp.open(remote_path, "rb") as handle:
                yield SftpReader(handle)

    async def close(self) -> None:
        return None

    async def _on_sftp(self, body: Callable[[asyncssh.SFTPClient], Awaitable[None]]) -> None:
        """`body` on an SFTP channel; on another if the server refused the first (a refusal
        comes as the channel opens, before `body` has written anything)."""

        async def attempt() -> None:
            async with self._pool.channel(self._target, self._transfer_timeout_s) as conn:
                async with conn.start_sftp_client() as sftp:
                    await body(sftp)

        await _elsewhere_when_refused(attempt)


class SshInteractive:
    """A long-lived remote process (core.ports.Interactive); asyncssh errors raised here
    become TransportError in the pool's channel around it."""

    def __init__(
        self, process: asyncssh.SSHClientProcess[bytes], conn: asyncssh.SSHClientConnection
    ) -> None:
        self._process = process
        self._conn = conn

    async def send(self, data: bytes) -> None:
        self._process.stdin.write(data)
        await self._process.stdin.drain()

    async def read(self, n: int = -1) -> bytes:
        data = await self._process.stdout.read(n)
        return data if isinstance(data, bytes) else b""

    def abort_link(self) -> None:
        self._conn.abort()  # the pool sees it closed and connects anew on the next call


class SftpReader:
    """One remote file open over SFTP (asyncssh splits a large read into parallel requests)."""

    def __init__(self, handle: asyncssh.SFTPClientFile) -> None:
        self._handle = handle

    async def read(self, offset: int, size: int) -> bytes:
        data = await self._handle.read(size, offset)
        return data if isinstance(data, bytes) else b""


async def _elsewhere_when_refused(attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()`, tried again up to REFUSED_RETRIES times while the server refuses its
    channel for want of sessions (the pool has learned its real limit by then)."""
    for _ in range(REFUSED_RETRIES):
        with suppress(ChannelRefused):
            return await attempt()
    return await attempt()


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
