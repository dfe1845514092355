"""serve's paced garbage collection (core/gc_pace.py): new objects are collected and the rest
frozen at each heartbeat, everything unfrozen and collected once an hour."""

from __future__ import annotations

import asyncio
import gc
import weakref
from datetime import UTC, datetime, timedelta

from core.gc_pace import FULL_EVERY_S, GcPacer

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


class Calls:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def collect(self) -> int:
        self.calls.append("collect")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


def test_each_tick_collects_the_new_and_freezes_and_an_hourly_one_unfreezes_everything_first():
    seen = Calls()
    pacer = GcPacer(collector=seen)
    ticks = [T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=FULL_EVERY_S - 1)]
    ticks.append(T0 + timedelta(seconds=FULL_EVERY_S))
    runs = []
    for at in ticks:
        seen.calls.clear()
        pacer.tick(at)
        runs.append(tuple(seen.calls))

    full, young = ("unfreeze", "collect", "freeze"), ("collect", "freeze")
    assert runs == [full, young, young, full]


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_survivors_are_frozen_and_cyclic_garbage_made_after_a_tick_is_still_collected():
    pacer = GcPacer()
    try:
        kept = Node()
        pacer.tick(T0)
        assert gc.get_freeze_count() > 0  # `kept` and everything before it: never walked again
        dropped = Node()
        gone = weakref.ref(dropped)
        del dropped
        pacer.tick(T0 + timedelta(seconds=30))
        assert gone() is None
        assert kept.me is kept
    finally:
        gc.unfreeze()


async def test_the_pacer_ticks_on_its_own_until_serve_stops() -> None:
    seen = Calls()
    pacer = GcPacer(every_s=0.0, collector=seen)
    stop = asyncio.Event()
    task = asyncio.create_task(pacer.run(stop, lambda: T0))
    while seen.calls.count("freeze") < 3:
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert seen.calls[:5] == ["unfreeze", "collect", "freeze", "collect", "freeze"]
