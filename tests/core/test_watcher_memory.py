"""Watcher keeps each run's memory as its last check committed it (core.memory.Stored) and the
next check starts from it without decoding; a row another writer changed in between (a reset,
a relaunch) is decoded afresh, and a run watched no more is forgotten."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.config import Config, RunConfig, WatcherConfig
from core.memory import Memory
from core.models import ExecResult, RunRecord
from core.store import Store
from core.supervisor_client import ANSWER_MARK
from core.watcher import Watcher
from tests.conftest import FakeClock
from tests.core.builders import probe_doc, state_doc


class Probes:
    """A transport whose every exec answers a probe of a healthy run at the clock's time."""

    label = "probes"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
        lasting: bool = False,
    ) -> ExecResult:
        now = self.clock.now
        state = state_doc(step=100, last_step_at=now, last_output_at=now, heartbeat_at=now)
        answer = json.dumps(probe_doc(now, state)).encode()
        return ExecResult(0, ANSWER_MARK + b"\n" + answer + b"\n", b"")


async def test_the_next_check_starts_from_the_kept_memory_and_a_changed_row_is_decoded(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RunConfig(name="ft", run_dir="/w/ft", command="python t.py", host="127.0.0.1")
    config = Config(watcher=WatcherConfig(state_dir=tmp_path / "state"), runs=[run])
    store = await Store.open(tmp_path / "db.sqlite3")
    transport = Probes(clock)
    watcher = Watcher(store, config, lambda r: transport, None, clock, emit=lambda line: None)
    launched = RunRecord(name="ft", run_dir="/w/ft", launched_at=clock.now, ssh_host="127.0.0.1")
    await store.upsert_run(replace(launched, status="running"))

    decoded: list[int] = []
    real = Memory.from_json.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Memory], doc: dict[str, Any]) -> Memory:
        decoded.append(len(doc.get("samples", ())))
        return real(cls, doc)  # type: ignore[no-any-return]

    monkeypatch.setattr(Memory, "from_json", classmethod(counted))
    try:
        for _ in range(3):
            clock.advance(60)
            assert await watcher.check("ft") is not None
        assert decoded == []  # the launch row has none; then the kept one each time
        row = await store.get_run("ft")
        assert row is not None and len(row.memory["samples"]) == 3

        # another writer puts a different memory in the row (here: streaks reset by hand)
        await store.upsert_run(replace(row, memory=Memory(launched_at=row.launched_at).to_json()))
        clock.advance(60)
        assert await watcher.check("ft") is not None
        assert decoded == [0]  # the row's own memory, not the kept one with 3 samples
        row = await store.get_run("ft")
        assert row is not None and len(row.memory["samples"]) == 1

        watcher.forget("ft")
        clock.advance(60)
        await watcher.check("ft")
        assert decoded == [0, 1]  # forgotten: decoded from the row

        assert "ft" in watcher._stored
        row = await store.get_run("ft")
        assert row is not None
        await store.upsert_run(replace(row, live=False))  # ended elsewhere: no more checks
        assert await watcher.check("ft") is None
        assert "ft" not in watcher._stored
    finally:
        await store.close()
