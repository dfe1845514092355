"""A Transport that runs on this machine (no SSH): the demo and pure-flow tests use it.

It behaves like the SSH transport where callers can tell: argv is never given to a shell, a
missing program exits 127 (as a remote shell reports it), a timeout raises TransportError and
kills the command's whole process group. Like a remote host, the command never sees the
watcher's secrets: they are left out of its environment (a trainer may print or upload it).

Chosen by the composition root (core.runtime.Engine.transport_for) for runs with `local = true`,
and by the demo.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from core.capped import STDERR_KEEP_BYTES, drain_tail, read_capped, retrieve_exception
from core.config import Secrets
from core.errors import TransportError
from core.models import ExecResult


def secret_env_names() -> frozenset[str]:
    """The environment variables Secrets reads: never passed on to a supervised command."""
    return frozenset(
        str(info.validation_alias)
        for info in Secrets.model_fields.values()
        if info.validation_alias
    )


def child_env() -> dict[str, str]:
    hidden = secret_env_names()
    return {name: value for name, value in os.environ.items() if name not in hidden}


class LocalTransport:
    label = "local"

    def __init__(self, *, max_output_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_output_bytes = max_output_bytes

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
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=child_env(),
                start_new_session=True,  # its own group, so a timeout kills its children too
            )
        except FileNotFoundError:
            return ExecResult(127, b"", f"{argv[0]}: command not found\n".encode())
        except PermissionError:
            return ExecResult(126, b"", f"{argv[0]}: permission denied\n".encode())
        except OSError as exc:
            raise TransportError(self.label, f"cannot start {argv[0]}: {exc}") from exc
        cap = self.max_output_bytes if max_output_bytes is None else max_output_bytes
        try:
            async with asyncio.timeout(timeout_s):
                result = await _collect(process, stdin or b"", cap)
        except BaseException as exc:
            await _kill_group(process)
            if isinstance(exc, TimeoutError):
                raise TransportError(self.label, f"timed out after {timeout_s:g}s") from None
            raise
        if result.overflow:
            await _kill_group(process)
        return result

    @asynccontextmanager
    async def open_process(
        self, argv: Sequence[str], *, open_timeout_s: float
    ) -> AsyncIterator[LocalInteractive]:
        if not argv:
            raise ValueError("argv must not be empty")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=child_env(),
                start_new_session=True,
            )
        except OSError as exc:
            raise TransportError(self.label, f"cannot start {argv[0]}: {exc}") from exc
        assert process.stderr is not None
        errors = asyncio.create_task(drain_tail(process.stderr, STDERR_KEEP_BYTES))
        errors.add_done_callback(retrieve_exception)
        try:
            yield LocalInteractive(process, self.label)
        finally:
            errors.cancel()
            await _close_gently(process)

    async def put_tree(self, local_dir: Path, remote_dir: str) -> None:
        try:
            shutil.copytree(
                local_dir,
                remote_dir,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        except (OSError, shutil.Error) as exc:
            raise TransportError(self.label, f"copy to {remote_dir} failed: {exc}") from exc

    async def put_files(self, files: Sequence[tuple[Path, str]]) -> None:
        try:
            for local, remote in files:
                await asyncio.to_thread(_copy_whole, local, Path(remote))
        except OSError as exc:
            raise TransportError(self.label, f"copy of {len(files)} files failed: {exc}") from exc

    async def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        target = Path(remote_path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(target, data, mode)
        except OSError as exc:
            raise TransportError(self.label, f"write to {remote_path} failed: {exc}") from exc

    @asynccontextmanager
    async def open_read(self, remote_path: str, *, timeout_s: float) -> AsyncIterator[LocalFile]:
        try:
            handle = await asyncio.to_thread(Path(remote_path).open, "rb")
        except OSError as exc:
            raise TransportError(self.label, f"cannot open {remote_path}: {exc}") from exc
        try:
            async with asyncio.timeout(timeout_s):
                yield LocalFile(handle, self.label)
        except TimeoutError:
            raise TransportError(self.label, f"timed out after {timeout_s:g}s") from None
        finally:
            handle.close()

    async def close(self) -> None:
        return None


class LocalInteractive:
    """A long-lived local process (core.ports.Interactive)."""

    def __init__(self, process: asyncio.subprocess.Process, label: str) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._stdin, self._stdout = process.stdin, process.stdout
        self._label = label

    async def send(self, data: bytes) -> None:
        try:
            self._stdin.write(data)
            await self._stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
            raise TransportError(self._label, f"the process went: {exc}") from exc

    async def read(self, n: int = -1) -> bytes:
        try:
            return await self._stdout.read(n)
        except OSError as exc:
            raise TransportError(self._label, f"read failed: {exc}") from exc

    def abort_link(self) -> None:
        return None  # a local pipe has no link to lose


async def _close_gently(process: asyncio.subprocess.Process, grace_s: float = 5.0) -> None:
    """EOF on its stdin (a session exits on it), then its whole group killed if it lingers."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        async with asyncio.timeout(grace_s):
            await process.wait()
    except TimeoutError:
        await _kill_group(process)


class LocalFile:
    def __init__(self, handle: BinaryIO, label: str) -> None:
        self._handle = handle
        self._label = label

    async def read(self, offset: int, size: int) -> bytes:
        try:
            return await asyncio.to_thread(os.pread, self._handle.fileno(), size, offset)
        except OSError as exc:
            raise TransportError(self._label, f"read failed: {exc}") from exc


def _write_atomic(target: Path, data: bytes, mode: int) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


async def _collect(process: asyncio.subprocess.Process, stdin: bytes, cap: int) -> ExecResult:
    """Like communicate(), but stdout is read with a cap (the SSH adapter does the same)."""
    assert process.stdin and process.stdout and process.stderr
    errors = asyncio.create_task(drain_tail(process.stderr, STDERR_KEEP_BYTES))
    errors.add_done_callback(retrieve_exception)
    try:
        if stdin:
            process.stdin.write(stdin)
            with suppress(BrokenPipeError, ConnectionResetError):
                await process.stdin.drain()
        process.stdin.close()
        stdout, overflow = await read_capped(process.stdout, cap)
        if overflow:
            return ExecResult(-1, stdout, b"", overflow=True)
        stderr = await errors
        returncode = await process.wait()
    finally:
        errors.cancel()
    return ExecResult(returncode, stdout, stderr)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def _copy_whole(local: Path, target: Path) -> None:
    """Copied aside, then renamed over: another run's supervisor may import it right now."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        shutil.copyfile(local, temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
