"""Issue 16's side effects of runs sharing a machine, without I/O beyond a real store: a check
that queued for its channel is stamped when its probe answered, and terminal messages of runs
ending together go out in the order the runs ended."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from core.config import Config, RunConfig, WatcherConfig
from core.models import ExecResult, MessageKind, OutboundMessage, RunRecord
from core.outbox import OutboxSender
from core.store import Store
from core.supervisor_client import ANSWER_MARK
from core.watcher import Watcher
from tests.conftest import FakeClock
from tests.core.builders import probe_doc, state_doc

QUEUED_S = 39.0


class QueuedProbe:
    """A transport whose probe waits QUEUED_S for a free channel (the fake clock moves) and
    then answers a running state."""

    label = "queued"

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
        self.clock.advance(QUEUED_S)
        doc = probe_doc(self.clock.now, state_doc(started_at=self.clock.now))
        return ExecResult(0, ANSWER_MARK + b"\n" + json.dumps(doc).encode() + b"\n", b"")


async def test_a_status_line_is_stamped_when_its_probe_answered_not_when_it_was_asked(
    tmp_path: Path, clock: FakeClock
) -> None:
    run = RunConfig(name="llama-ft", run_dir="/w/ft", command="python t.py", host="127.0.0.1")
    config = Config(watcher=WatcherConfig(state_dir=tmp_path / "state"), runs=[run])
    store = await Store.open(tmp_path / "db.sqlite3")
    record = RunRecord(name="llama-ft", run_dir="/w/ft", launched_at=clock.now)
    await store.upsert_run(record)
    lines: list[str] = []
    transport = QueuedProbe(clock)
    asked_at = clock.now
    watcher = Watcher(store, config, lambda r: transport, None, clock, emit=lines.append)

    await watcher.check("llama-ft")

    answered = (asked_at.timestamp() + QUEUED_S, clock.now.timestamp())
    assert answered[0] == answered[1]
    assert lines[0].split()[0] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    stored = await store.get_run("llama-ft")
    assert stored is not None and stored.last_check_at == clock.now
    await store.close()


class Recording:
    def __init__(self) -> None:
        self.titles: list[str] = []

    async def deliver(self, message: OutboundMessage) -> None:
        self.titles.append(message.title)


def terminal(run: str) -> OutboundMessage:
    return OutboundMessage(kind=MessageKind.TERMINAL, title=f"{run}: done", run=run)


async def test_terminal_messages_of_runs_ending_together_go_out_in_the_order_they_ended(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    notifier = Recording()
    sender = OutboxSender(store, notifier, clock, min_gap_s=0.0, hold_s=3.0)
    ended = [clock.advance(1) for _ in range(3)]  # a, b, c end one second apart
    clock.advance(20)  # their teardowns finish together, the last-ended run's first
    await store.enqueue(terminal("c"), dedupe_key="c:terminal", at=ended[2])
    await sender.drain_once()  # c is held a moment for siblings
    clock.advance(1)
    await store.enqueue(terminal("b"), dedupe_key="b:terminal", at=ended[1])
    await store.enqueue(terminal("a"), dedupe_key="a:terminal", at=ended[0])
    await sender.drain_once()
    assert notifier.titles == []
    for _ in range(10):  # a few seconds later
        clock.advance(1)
        await sender.drain_once()

    assert notifier.titles == ["a: done", "b: done", "c: done"]
    await store.close()
