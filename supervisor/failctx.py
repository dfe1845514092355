"""What the machine says at the moment an attempt failed: free disk, the kernel's OOM killer.

Read once per failed attempt, bounded, and never fatal: an unreadable source is a sentence in
the excerpt, not an error.

Called by supervisor.verdict when it reads a failed attempt.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from typing import Iterable, List, Optional, Tuple

KMSG = "/dev/kmsg"
OOM_KILL = re.compile(r"Killed process \d+|Out of memory|oom-kill|Memory cgroup out of memory")
FULL_MB = 64.0  # a filesystem with less than this free (or 1% of it) is full for a trainer


# An absolute path the trainer printed (quoted, or after "to"/"at"/"in"): where it was writing.
LOG_PATH = re.compile(r"""(?:['"]|\b(?:to|at|in|into) )(/[\w.@+-][\w./@+-]{0,300})""")


def paths_in(tail: List[str], limit: int = 6) -> List[str]:
    """Existing directories named by absolute paths in the last lines (newest first), so a
    full output disk the trainer wrote to is checked too. Only stat'ed, never opened."""
    found: List[str] = []
    for line in reversed(tail[-40:]):
        for raw in LOG_PATH.findall(line):
            path = os.path.normpath(raw)
            while path not in ("/", "") and not os.path.isdir(path):
                path = os.path.dirname(path)
            if path not in ("/", "") and path not in found:
                found.append(path)
            if len(found) >= limit:
                return found
    return found


def disk_readings(paths: Iterable[str]) -> List[Tuple[str, float, float]]:
    """(path, free MB, total MB) for each distinct filesystem among the paths that exist."""
    seen, out = set(), []
    for path in paths:
        try:
            dev = os.stat(path).st_dev
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if dev in seen or usage.total == 0:  # a pseudo filesystem has no space to fill
            continue
        seen.add(dev)
        out.append((path, usage.free / 2**20, usage.total / 2**20))
    return out


def low_disk(
    readings: List[Tuple[str, float, float]], min_free_mb: float
) -> List[Tuple[str, float, float]]:
    return [r for r in readings if r[1] < max(min_free_mb, min(FULL_MB, r[2] / 100))]


def disk_note(readings: List[Tuple[str, float, float]], low: List[Tuple[str, float, float]]) -> str:
    if not readings:
        return "free disk at the failure: unreadable"
    parts = ["%s %s free of %s" % (p, _mb(f), _mb(t)) for p, f, t in readings]
    head = "disk full at the failure" if low else "free disk at the failure"
    return "%s: %s" % (head, "; ".join(parts))


def _mb(value: float) -> str:
    return "%.1f GB" % (value / 1024) if value >= 1024 else "%.1f MB" % value


def kernel_oom_lines(
    since_s: float, path: str = KMSG, max_records: int = 20000
) -> Optional[List[str]]:
    """OOM-killer lines the kernel logged after `since_s` (seconds since boot, the clock of
    time.monotonic()), or None when the kernel log cannot be read (containers usually)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    found: List[str] = []
    try:
        for _ in range(max_records):
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while reading: skip ahead
                    continue
                break  # EAGAIN: nothing more
            line = _kmsg_line(record, since_s)
            if line and OOM_KILL.search(line):
                found.append(line[:300])
    finally:
        os.close(fd)
    return found[-3:]


def _kmsg_line(record: bytes, since_s: float) -> Optional[str]:
    head, _, message = record.decode("utf-8", "replace").partition(";")
    fields = head.split(",")
    try:
        at_s = int(fields[2]) / 1e6
    except (IndexError, ValueError):
        return None
    return message.split("\n", 1)[0] if at_s >= since_s else None


def sigkill_note(lines: Optional[List[str]]) -> str:
    if lines is None:
        return "the kernel log is unreadable here: SIGKILL is most often the kernel's OOM killer"
    if not lines:
        return (
            "no OOM-killer entry in the kernel log since the attempt began: SIGKILL came from "
            "something else (a wrapper's timeout, the host, a human)"
        )
    return "kernel OOM killer: " + " | ".join(lines)
