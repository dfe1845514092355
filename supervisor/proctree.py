"""How busy the trainer's process tree is: CPU seconds and I/O bytes, read from /proc.

"Silent" is not "stuck": a trainer loading a large model, compiling or writing a checkpoint
prints nothing for minutes with the GPU idle, but its CPU time or its I/O bytes keep moving.
The watcher kills a silent attempt only when this says the tree made no progress either.

Cheap on purpose (read at each heartbeat): at most MAX_PIDS processes, children found through
/proc/<pid>/task/<tid>/children (one small file per thread) and, where the kernel lacks those
files, one scan of /proc/*/stat. A reading that cannot be taken is None ("unknown"), never 0.

Read by supervisor.runner at each heartbeat (ActivityTracker.stamped) into state.json's
`activity`, which the watcher's silence rule (core/silence.py) reads.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .timeutil import iso_z

MAX_PIDS = 256
CPU_NOISE_SHARE = 0.10  # under a tenth of one core over a beat is a background thread
IO_NOISE_BYTES = 1 << 20  # under 1 MiB over a beat is a log line or a metrics file
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_pids(root: int, proc: str = "/proc", max_pids: int = MAX_PIDS) -> List[int]:
    """`root` and its descendants (breadth first, at most `max_pids`); [] if root is gone."""
    if not os.path.exists(os.path.join(proc, str(root))):
        return []
    children = _children_from_tasks if _has_children_files(root, proc) else None
    parents: Dict[int, List[int]] = {} if children else _ppid_map(proc)
    seen, queue = [root], [root]
    while queue and len(seen) < max_pids:
        pid = queue.pop(0)
        kids = children(pid, proc) if children else parents.get(pid, [])
        for kid in kids:
            if kid not in seen and len(seen) < max_pids:
                seen.append(kid)
                queue.append(kid)
    return seen


def _has_children_files(pid: int, proc: str) -> bool:
    return os.path.exists(os.path.join(proc, str(pid), "task", str(pid), "children"))


def _children_from_tasks(pid: int, proc: str) -> List[int]:
    kids: List[int] = []
    try:
        tids = os.listdir(os.path.join(proc, str(pid), "task"))
    except OSError:
        return kids
    for tid in tids:
        text = _read(os.path.join(proc, str(pid), "task", tid, "children"))
        kids.extend(int(p) for p in (text or "").split() if p.isdigit())
    return kids


def _ppid_map(proc: str) -> Dict[int, List[int]]:
    parents: Dict[int, List[int]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return parents
    for name in names:
        if not name.isdigit():
            continue
        fields = _stat_fields(_read(os.path.join(proc, name, "stat")))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(name))
    return parents


def _stat_fields(text: Optional[str]) -> Optional[List[str]]:
    """Fields after `pid (comm)`: the command name may hold spaces and parentheses."""
    if not text or ")" not in text:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pids: Iterable[int], proc: str = "/proc") -> Optional[float]:
    """utime + stime of each pid (threads included), summed; None if none could be read."""
    total, read_any = 0, False
    for pid in pids:
        fields = _stat_fields(_read(os.path.join(proc, str(pid), "stat")))
        if fields is None or len(fields) < 13:
            continue
        try:
            # state ppid pgrp ... utime is field 14 of stat, the 12th after `(comm)`
            total += int(fields[11]) + int(fields[12])
        except ValueError:
            continue
        read_any = True
    return total / float(_TICKS) if read_any else None


def io_bytes(pids: Iterable[int], proc: str = "/proc") -> Optional[int]:
    """rchar + wchar of each pid (bytes through read/write calls, the page cache included, so
    a checkpoint written to cache counts); None when no /proc/<pid>/io is readable (another
    user's process, a hardened kernel): unknown, not zero."""
    total, read_any = 0, False
    for pid in pids:
        text = _read(os.path.join(proc, str(pid), "io"))
        if not text:
            continue
        counters = {}
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if value.strip().isdigit():
                counters[name.strip()] = int(value.strip())
        if "rchar" in counters and "wchar" in counters:
            total += counters["rchar"] + counters["wchar"]
            read_any = True
    return total if read_any else None


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16).decode("ascii", "replace")
    except OSError:
        return None


class ActivityTracker:
    """Remembers the last reading and when the tree last made real progress.

    `observe(pid, at, mono)` returns `{cpu_s, io_bytes, pids, last_cpu_at, last_io_at}` (None
    where unknown). CPU counts as progress when it grew by at least CPU_NOISE_SHARE of the wall
    time since the previous reading, I/O when it grew by IO_NOISE_BYTES. Descendants that exit
    take their counters with them (a sum can fall): a fall is a new base, not progress. The
    first reading of a new trainer counts as progress: it has only just started.
    """

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.last_cpu_at: Any = None
        self.last_io_at: Any = None
        self._pid: Optional[int] = None
        self._prev: Optional[Tuple[float, Optional[float], Optional[int]]] = None

    @property
    def last_active_at(self) -> Any:
        moments = [m for m in (self.last_cpu_at, self.last_io_at) if m is not None]
        return max(moments) if moments else None

    def observe(self, pid: Optional[int], at: Any, mono: float) -> Optional[Dict[str, Any]]:
        if pid != self._pid:  # a new attempt's trainer (or none): start afresh
            self.last_cpu_at = self.last_io_at = self._prev = None
            self._pid = pid
        pids = tree_pids(pid, self.proc) if pid else []
        if not pids:
            return None
        cpu, io = cpu_seconds(pids, self.proc), io_bytes(pids, self.proc)
        if cpu is None and io is None:
            return None
        prev = self._prev
        wall = 0.0 if prev is None else max(mono - prev[0], 0.0)
        if cpu is not None and (prev is None or _grew(prev[1], cpu, CPU_NOISE_SHARE * wall)):
            self.last_cpu_at = at
        if io is not None and (prev is None or _grew(prev[2], io, IO_NOISE_BYTES)):
            self.last_io_at = at
        self._prev = (mono, cpu, io)
        return {
            "cpu_s": None if cpu is None else round(cpu, 2),
            "io_bytes": io,
            "pids": len(pids),
            "last_cpu_at": self.last_cpu_at if cpu is not None else None,
            "last_io_at": self.last_io_at if io is not None else None,
        }

    def stamped(self, pid: Optional[int], at: Any, mono: float) -> Optional[Dict[str, Any]]:
        """observe() for state.json: its moments as ISO text, and None (unknown, not idle)
        where /proc misbehaves, because /proc oddities must never stop the heartbeat."""
        try:
            reading = self.observe(pid, at, mono)
        except Exception:
            return None
        if reading is not None:
            reading["at"] = iso_z(at)
            reading["last_cpu_at"] = iso_z(reading["last_cpu_at"])
            reading["last_io_at"] = iso_z(reading["last_io_at"])
        return reading


def _grew(before: Any, now: float, floor: float) -> bool:
    return before is not None and floor > 0 and now - before >= floor
