"""Reading a command's output with a cap, shared by the SSH and the local transport: a
compromised instance answering 700 MB must not grow the watcher (issue 11). Nothing here
holds more than the cap plus one chunk."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

STDERR_KEEP_BYTES = 65536  # the last bytes of stderr kept for error messages; the rest is drained
READ_CHUNK = 65536


class Readable(Protocol):
    async def read(self, n: int = -1) -> Any: ...


async def read_capped(stream: Readable, cap: int) -> tuple[bytes, bool]:
    """Read to EOF: (data, False), or (the first `cap` bytes, True) as soon as it goes past."""
    data = bytearray()
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            return bytes(data), False
        data += chunk if isinstance(chunk, bytes) else b""
        if len(data) > cap:
            return bytes(data[:cap]), True


async def drain_tail(stream: Readable, keep: int) -> bytes:
    """Read to EOF, keeping only the last `keep` bytes (error messages end there)."""
    data = bytearray()
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            return bytes(data[-keep:])
        data += chunk if isinstance(chunk, bytes) else b""
        if len(data) > 2 * keep:
            del data[:-keep]


def retrieve_exception(task: asyncio.Task[Any]) -> None:
    """Mark a side task's error as seen: the main read reports the stream's failure."""
    if not task.cancelled():
        task.exception()


class LineTooLong(Exception):
    """A line went past its cap before its newline came: the rest is never held."""


class LineReader:
    """Lines of a long-lived stream (a supervisor session), each at most `max_bytes`: nothing
    here holds more than the cap plus one chunk, whatever the far end sends."""

    def __init__(self, stream: Readable, max_bytes: int) -> None:
        self._stream = stream
        self._max = max_bytes
        self._buf = bytearray()

    async def line(self) -> bytes | None:
        """The next line without its newline; None at EOF (a last unfinished line is lost).
        Raises LineTooLong."""
        while True:
            end = self._buf.find(b"\n")
            if end > self._max or (end < 0 and len(self._buf) > self._max):
                self._buf.clear()
                raise LineTooLong(f"a line longer than {self._max} bytes")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                return line
            chunk = await self._stream.read(READ_CHUNK)
            if not chunk:
                return None
            self._buf += chunk if isinstance(chunk, bytes) else b""
