"""Fixes from the review of the integration code: a relaunch starts clean, a human's /extend or
/mute is never undone by a check that read the run first, the wait channel hears what happened
while the watcher was down and survives odd answers, a failed upload is not a live run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from core.config import Config, RunConfig, WatcherConfig
from core.control import NoDeadline, WatcherControl
from core.errors import TransportError
from core.exits import ExitHandler
from core.launch import LaunchPlan, LaunchRefused, launch
from core.models import (
    CheckCommit,
    ExecResult,
    InstanceInfo,
    InstanceState,
    MessageKind,
    OutboundMessage,
    RunRecord,
)
from core.providers import RecordingProvider
from core.store import Store
from core.waiter import RunWaiter
from tests.conftest import FakeClock


def record(name: str, clock: FakeClock, **fields: object) -> RunRecord:
    base = RunRecord(name=name, run_dir=f"/w/{name}", launched_at=clock.now)
    return replace(base, **fields)  # type: ignore[arg-type]


def config(tmp_path: Path, name: str = "ft") -> Config:
    run = RunConfig(name=name, run_dir=f"/w/{name}", command="python t.py", host="127.0.0.1")
    return Config(watcher=WatcherConfig(state_dir=tmp_path / "state"), runs=[run])


async def test_a_relaunched_run_destroys_its_new_instance_and_says_so(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    provider = RecordingProvider([InstanceInfo(id="222", state=InstanceState.RUNNING)])

    async def no_sleep(_: float) -> None:
        return None

    # no [runs.collect]: the new instance's logs are listed (none here), pulled, then the destroy
    transport = no_logs_transport()
    exits = ExitHandler(
        store,
        config(tmp_path),
        lambda r: transport,
        lambda r: provider,
        clock,
        lambda: None,
        sleep=no_sleep,
    )
    # the first run under this name was destroyed and its terminal message sent
    await store.upsert_run(record("ft", clock, instance_id="111", live=False, teardown="destroyed"))
    first = {"result": {"state": "verified", "line": "first run's logs", "reasons": []}}
    await store.set_meta("collect:ft", json.dumps(first))
    await store.claim_action("ft", "teardown", clock.now)
    await store.finish_action("ft", "teardown", "destroyed", clock.now)
    old = OutboundMessage(kind=MessageKind.TERMINAL, title="old", run="ft")
    assert await store.enqueue(old, dedupe_key="ft:terminal", at=clock.now) is not None

    clock.advance(3600)
    await store.reset_run("ft", clock.now)
    second = record("ft", clock, instance_id="222", status="done")
    await store.upsert_run(second)
    await exits.finish(second, None, None)

    assert [c for c in provider.requests if c[0] == "destroy"] == [("destroy", "222", None)]
    assert [c for c in transport.calls if "manifest" in c]  # its own logs, not the first run's
    titles = [item.message.title for item in await store.pending(clock.now)]
    assert "old" in titles and any(t.startswith("ft:") for t in titles)  # a new terminal
    final = await store.get_run("ft")
    assert final is not None and final.teardown == "destroyed" and not final.live
    await store.close()


async def test_an_extend_or_mute_during_a_check_is_not_undone(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    await store.upsert_run(record("ft", clock, deadline_at=clock.now + timedelta(hours=1)))
    stale = await store.get_run("ft")  # the check read the row before the human's command
    assert stale is not None
    deadline = clock.now + timedelta(hours=3)
    muted = clock.now + timedelta(hours=2)
    await store.set_human_fields("ft", deadline_at=deadline, muted_until=muted)
    await store.commit_check(
        CheckCommit(
            run=replace(stale, status="running"), at=clock.now, status_line="l", health="ok"
        )
    )
    await store.save_run(replace(stale, status="running", live=True))
    after = await store.get_run("ft")
    assert after is not None
    assert (after.deadline_at, after.muted_until, after.status) == (deadline, muted, "running")
    await store.close()


async def test_extend_refuses_a_run_without_a_deadline(tmp_path: Path, clock: FakeClock) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    await store.upsert_run(record("ft", clock))
    control = WatcherControl(store, None, clock)  # type: ignore[arg-type]
    with pytest.raises(NoDeadline, match="nothing to extend"):
        await control.extend("ft", 3600, clock.now)
    assert (await store.get_run("ft")).deadline_at is None  # type: ignore[union-attr]
    await store.close()


class ScriptedTransport:
    label = "scripted"

    def __init__(self, answers: Sequence[bytes]) -> None:
        self.answers = list(answers)
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
        if not self.answers:
            raise TransportError("scripted", "no more answers")
        return ExecResult(0, self.answers.pop(0), b"")

    async def put_tree(self, local_dir: Path, remote_dir: str) -> None:
        raise TransportError("scripted", "sftp refused", permanent=True)

    async def put_files(self, files: Sequence[tuple[Path, str]]) -> None:
        raise TransportError("scripted", "sftp refused", permanent=True)

    async def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        raise TransportError("scripted", "sftp refused", permanent=True)

    async def close(self) -> None:
        return None


def no_logs_transport() -> ScriptedTransport:
    """An instance whose supervisor lists no logs: a run with no [runs.collect] pulls its
    logs before the teardown, and here there are none."""
    no_logs = {"ok": True, "files": [], "missing": ["attempts", "metric_history.json"]}
    return ScriptedTransport([json.dumps(no_logs).encode()])


def wait_answer(reason: str, status: str | None, attempt: object = 1) -> bytes:
    state = None if status is None else {"status": status, "attempt": attempt}
    return json.dumps({"reason": reason, "state": state}).encode()


async def test_the_wait_channel_hears_a_run_that_ended_while_the_watcher_was_down(
    clock: FakeClock,
) -> None:
    woken: list[str] = []
    transport = ScriptedTransport([wait_answer("changed", "done")])
    stored = record("ft", clock, status="running", attempt=1)

    async def no_sleep(_: float) -> None:
        return None

    waiter = RunWaiter(
        stored,
        transport,
        python="python3",
        remote_root="/r",
        quiet_s=600,
        timeout_s=60,
        wake=woken.append,
        sleep=no_sleep,
    )
    await waiter.run()  # returns: the run is over
    assert woken == ["ft"]


async def test_odd_wait_answers_do_not_kill_the_wait_channel(clock: FakeClock) -> None:
    woken: list[str] = []
    sleeps: list[float] = []
    answers = [
        wait_answer("changed", "running", attempt=None),  # attempt null
        b'{"reason": "changed", "state": ["not", "an", "object"]}',
        b"not json",
        wait_answer("changed", "running", attempt=2),
        wait_answer("changed", "failed", attempt=2),
    ]
    transport = ScriptedTransport(answers)

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    waiter = RunWaiter(
        record("ft", clock, status="running", attempt=1),
        transport,
        python="python3",
        remote_root="/r",
        quiet_s=600,
        timeout_s=60,
        wake=woken.append,
        sleep=fake_sleep,
    )
    await waiter.run()
    assert len(transport.calls) == 5
    assert woken.count("ft") >= 2  # the new attempt, then the end
    assert len(sleeps) >= 2  # the odd answers backed off instead of spinning


async def test_a_failed_upload_leaves_no_live_run(tmp_path: Path, clock: FakeClock) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    cfg = config(tmp_path)
    plan = LaunchPlan(record("ft", clock, ssh_host="127.0.0.1"), None, None)
    with pytest.raises(LaunchRefused, match="sftp refused"):
        await launch(plan, cfg.runs[0], cfg, store, ScriptedTransport([]), None)
    stored = await store.get_run("ft")
    assert stored is not None and not stored.live and stored.status == "launch_failed"
    await store.close()


async def test_relaunching_a_live_run_needs_replace(tmp_path: Path, clock: FakeClock) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    cfg = config(tmp_path)
    await store.upsert_run(record("ft", clock, live=True))
    plan = LaunchPlan(record("ft", clock, ssh_host="127.0.0.1"), None, None)
    with pytest.raises(LaunchRefused, match="--replace"):
        await launch(plan, cfg.runs[0], cfg, store, ScriptedTransport([]), None, force=True)
    await store.close()


async def test_a_restart_between_a_cost_cap_ending_and_its_delete_still_destroys(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The watcher began the max_cost ending (row `stopped`, outcome cost_capped) and died
    before its DELETE: the restart finishes it, even under a policy that keeps instances."""
    store = await Store.open(tmp_path / "db.sqlite3")
    provider = RecordingProvider([InstanceInfo(id="333", state=InstanceState.RUNNING)])
    run = RunConfig(
        name="ft",
        run_dir="/w/ft",
        command="python t.py",
        host="127.0.0.1",
        destroy_on_done=False,
        destroy_on_fail=False,
    )
    keeping = Config(watcher=WatcherConfig(state_dir=tmp_path / "state"), runs=[run])

    async def no_sleep(_: float) -> None:
        return None

    transport = no_logs_transport()  # no [runs.collect]: its logs first (none here)
    exits = ExitHandler(
        store, keeping, lambda r: transport, lambda r: provider, clock, lambda: None, sleep=no_sleep
    )
    ended = record(
        "ft", clock, instance_id="333", status="stopped", outcome="cost_capped", ended_at=clock.now
    )
    try:
        await store.upsert_run(ended)
        assert await exits.finish(ended, None, None) is None
        assert provider.calls("destroy") == [("destroy", "333", None)]
        final = await store.get_run("ft")
        assert final is not None and (final.teardown, final.live) == ("destroyed", False)
    finally:
        await store.close()  # an open store's thread would keep a failed run from exiting
