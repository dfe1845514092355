"""The end's ack (phase two of the dead-man handshake) survives a dropped exec: an unacked end
would let the supervisor's switch destroy an instance the person meant to keep."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from core.config import Config, RunConfig, WatcherConfig
from core.errors import TransportError
from core.models import ExecResult, RunRecord
from core.store import Store
from core.supervisor_client import ANSWER_MARK
from core.watcher import ACK_RETRY_DELAYS_S, Watcher
from tests.conftest import FakeClock
from tests.core.builders import make_state


class FlakyAcks:
    """A transport whose first `failures` execs drop, then the supervisor matches the ack."""

    label = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[list[str]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
        lasting: bool = False,
    ) -> ExecResult:
        self.calls.append(list(argv))
        if len(self.calls) <= self.failures:
            raise TransportError(self.label, "connection reset")
        answer = json.dumps({"ok": True, "matches": True, "message": "stored"}).encode()
        return ExecResult(0, b"motd noise\n" + ANSWER_MARK + b"\n" + answer + b"\n", b"")


@asynccontextmanager
async def acking(
    tmp_path: Path, clock: FakeClock, transport: FlakyAcks, slept: list[float]
) -> AsyncIterator[Watcher]:
    run = RunConfig(name="ft", run_dir="/w/ft", command="python t.py", host="127.0.0.1")
    config = Config(watcher=WatcherConfig(state_dir=tmp_path / "state"), runs=[run])
    store = await Store.open(tmp_path / "db.sqlite3")
    watcher = Watcher(store, config, lambda record: transport, None, clock)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    watcher.exits.sleep = sleep
    try:
        yield watcher
    finally:
        await store.close()


async def test_a_dropped_ack_is_sent_again_until_the_supervisor_has_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    transport, slept = FlakyAcks(failures=2), []
    record = RunRecord(name="ft", run_dir="/w/ft", launched_at=clock.now, ssh_host="127.0.0.1")
    async with acking(tmp_path, clock, transport, slept) as watcher:
        await watcher.acknowledge_end(record, make_state(status="done", outcome="completed"))
    assert len(transport.calls) == 3  # two drops, then the one that landed
    assert all("ack" in argv and "done" in argv for argv in transport.calls)
    assert slept == list(ACK_RETRY_DELAYS_S)


async def test_an_ack_that_never_lands_gives_up_after_its_tries(
    tmp_path: Path, clock: FakeClock
) -> None:
    transport, slept = FlakyAcks(failures=100), []
    record = RunRecord(name="ft", run_dir="/w/ft", launched_at=clock.now, ssh_host="127.0.0.1")
    async with acking(tmp_path, clock, transport, slept) as watcher:
        await watcher.acknowledge_end(record, make_state(status="failed", outcome="unfixable"))
    assert len(transport.calls) == len(ACK_RETRY_DELAYS_S) + 1
