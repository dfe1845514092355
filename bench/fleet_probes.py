"""What the fleet bench watches beside `serve` (bench/fleet.py runs these in serve's process).

- LoopLag: a task that asks to wake every TICK_S and records how late it woke: the event loop's
  own latency, what every check and exec waits through when a callback blocks the loop.
- GcPauses: the time each garbage collection held the loop (gc.callbacks), by generation.
- Timings: durations of one kind of await (the probe's exec, the check's commit), to tell
  where a slow check spent its time.
- ReferenceWork: the CPU of a fixed piece of pure-Python work (JSON, sorting, arithmetic; none of
  sleepwatch's code), timed on serve's loop through window A: serve's CPU per check against it
  says how fast the code is on this host at the time (the fake server's CPU per check does too,
  but only while serve sends its requests alike). Not free of load: beside serve's work the unit
  costs more (caches), so compare it between runs of the same N.
- cpu_s / machine_cpu: CPU seconds of one process (the fake instances' server: it shares this
  machine's cores with serve) and of the whole machine (/proc/stat: other work on it), so a
  figure measured on a shared machine says how shared it was.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.common import percentile

TICK_S = 0.05
REFERENCE_EVERY_S, REFERENCE_UNITS = 1.0, 10
T = TypeVar("T")


_REFERENCE_DOC = {
    "gpus": [
        {"index": i, "util_pct": 97.0 - i, "power_w": 612.5, "throttle": ["hw"]} for i in range(8)
    ],
    "log": "step 40000 loss=1.873 lr=2e-05 " * 40,
    "steps": list(range(300, 0, -1)),
}


def _reference_unit() -> float:
    doc = json.loads(json.dumps(_REFERENCE_DOC))
    steps = sorted(doc["steps"], key=lambda step: (step % 7, step))
    return sum(g["util_pct"] * g["power_w"] for g in doc["gpus"]) + steps[0]


class ReferenceWork:
    """Every REFERENCE_EVERY_S, REFERENCE_UNITS units of the reference work on the loop, timed
    (CPU): the host's speed where and while serve runs. A 2-vCPU host was seen to flip between
    0.10 and 0.17 ms a unit from one second to the next, so a figure timed once beside a window
    could be off by 70 % (measured alone in a process of its own). Its CPU is taken out of
    serve's by the window."""

    def __init__(self) -> None:
        self.cpu_s, self.units = 0.0, 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.cpu_s, self.units = 0.0, 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REFERENCE_EVERY_S)
            start = time.thread_time()  # the loop's thread only: not SQLite's meanwhile
            for _ in range(REFERENCE_UNITS):
                _reference_unit()
            self.cpu_s += time.thread_time() - start
            self.units += REFERENCE_UNITS

    def stop(self) -> float | None:
        """CPU ms of one unit, the mean over the window."""
        if self._task is not None:
            self._task.cancel()
        return 1000 * self.cpu_s / self.units if self.units else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 2)


def spread(values: list[float]) -> dict[str, Any]:
    """n, p50, p99, max in ms of durations in seconds."""
    return {
        "n": len(values),
        "p50_ms": _ms(percentile(values, 50)),
        "p99_ms": _ms(percentile(values, 99)),
        "max_ms": _ms(max(values) if values else None),
    }


class LoopLag:
    """How late the loop wakes a task that sleeps TICK_S at a time (started/stopped by hand)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.lags.clear()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(TICK_S)
            self.lags.append(max(0.0, loop.time() - asked - TICK_S))

    def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
        lags = self.lags
        return {
            **spread(lags),
            "over_100ms": sum(lag > 0.1 for lag in lags),
            "over_1s": sum(lag > 1.0 for lag in lags),
        }


class GcPauses:
    """Every collection's pause while installed (gc.callbacks), by generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._began = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._began)

    def summary(self) -> dict[str, Any]:
        every = [p for pauses in self.pauses.values() for p in pauses]
        return {
            "collections": {str(g): len(p) for g, p in self.pauses.items()},
            "total_ms": _ms(sum(every)),
            "max_ms": _ms(max(every) if every else None),
        }


class Timings:
    """Durations of awaits of one kind, recorded while `on`."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.on = False

    async def timed(self, work: Awaitable[T]) -> T:
        start = time.perf_counter()
        try:
            return await work
        finally:
            if self.on:
                self.values.append(time.perf_counter() - start)

    def wrap(self, call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def timed_call(*args: Any, **kwargs: Any) -> T:
            return await self.timed(call(*args, **kwargs))

        return timed_call


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (0.0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, every core summed (/proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    ticks = [int(v) for v in first[:8]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK
