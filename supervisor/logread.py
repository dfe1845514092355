"""Bounded reads of an attempt log: a chunk from an offset, and the last lines.

Both cost the same whatever the log's size: they seek, and never read more than a fixed cap.

Used by supervisor.attempt, supervisor.probe (the log since an offset), supervisor.runner (the
tail a failure is read from) and supervisor.waiter.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*(?:\x07|\x1b\\)|\x1b[@-_]")
TAIL_BLOCK = 65536
TAIL_CAP = 1 << 20
LINE_CHARS = 500


def attempt_log(run_dir: str, attempt: int) -> str:
    return os.path.join(run_dir, "attempts", "%d.log" % attempt)


def read_chunk(path: str, attempt: int, offset: int, max_bytes: int) -> Dict[str, Any]:
    """Bytes [offset, size) capped at max_bytes (skipping ahead when more are new), decoded
    leniently. A trailing incomplete UTF-8 sequence is held back for the next read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return _chunk(attempt, 0, 0, 0, 0, b"")
    try:
        size = os.fstat(fd).st_size
        offset = 0 if offset < 0 or offset > size else offset
        skipped = max(0, size - offset - max_bytes)
        start = offset + skipped
        data = os.pread(fd, size - start, start) if size > start else b""
    finally:
        os.close(fd)
    data = data[: len(data) - _incomplete_utf8_suffix(data)]
    return _chunk(attempt, offset, start + len(data), size, skipped, data)


def _chunk(attempt: int, offset: int, nxt: int, size: int, skipped: int, data: bytes) -> dict:
    return {
        "attempt": attempt,
        "offset": offset,
        "next_offset": nxt,
        "size": size,
        "skipped": skipped,
        "text": data.decode("utf-8", errors="replace"),
    }


def _incomplete_utf8_suffix(data: bytes) -> int:
    """How many trailing bytes start a UTF-8 sequence that is not finished yet (0 to 3)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: a lead byte or ASCII
            return back if _sequence_length(byte) > back else 0
    return 0


def _sequence_length(lead: int) -> int:
    if lead >> 5 == 0b110:
        return 2
    if lead >> 4 == 0b1110:
        return 3
    if lead >> 3 == 0b11110:
        return 4
    return 1


def tail_lines(path: str, count: int = 40, cap: int = TAIL_CAP) -> List[str]:
    """The last `count` lines, reading backwards in blocks, at most `cap` bytes from the end.
    Carriage-return redraws collapse to the last redraw; ANSI escapes and NULs go; each line
    is cut to LINE_CHARS characters."""
    if count <= 0:
        return []
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        data = _read_backwards(fd, count, cap)
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    # The first line may be cut at the window's edge; it is kept only when there is room.
    return [clean_line(line) for line in lines[-count:]]


def _read_backwards(fd: int, count: int, cap: int) -> bytes:
    end = os.fstat(fd).st_size
    pos, blocks, newlines = end, [], 0
    while pos > 0 and end - pos < cap and newlines <= count:
        size = min(TAIL_BLOCK, pos, cap - (end - pos))
        pos -= size
        block = os.pread(fd, size, pos)
        blocks.append(block)
        newlines += block.count(b"\n")
    return b"".join(reversed(blocks))


def clean_line(raw: bytes) -> str:
    raw = raw.replace(b"\x00", b"")
    segments = [s for s in raw.split(b"\r") if s.strip()]
    # Cut before decoding: a 100 MB line must not be decoded whole.
    last = segments[-1][: LINE_CHARS * 8] if segments else b""
    text = last.decode("utf-8", errors="replace")
    return ANSI.sub("", text).rstrip()[:LINE_CHARS]
