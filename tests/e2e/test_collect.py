"""Issue 13 acceptance, collect-verify-then-destroy, end to end: a real supervisor started over
the real sshd fixture, the real VastProvider against the fake Vast API, outputs pulled over
SFTP. The fake API hashes the local outputs the moment its DELETE arrives, so "verified before
destroyed" is read at the DELETE itself, not after."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.collect_cli import collect_now
from core.collect_report import Progress
from core.config import CollectConfig, Config
from core.control import WatcherControl
from core.launch import launch, plan_launch
from core.models import MessageKind, OutboundMessage, RunRecord
from core.providers import VastProvider
from core.runtime import DB_NAME, utc_now
from core.store import Store
from core.topics import Action
from core.upkeep import queue_kept_reminders
from core.watcher import Watcher
from tests.conftest import FakeClock
from tests.e2e.vast_helpers import (
    INSTANCE,
    RUN,
    Transports,
    add_instance,
    make_config,
    run_dir,
    stop_supervisor,
    vast_provider,
    wait_for_status,
)
from tests.fixtures.fake_vast import RecordingSleep

if TYPE_CHECKING:
    from tests.fixtures.fake_vast import FakeVast
    from tests.fixtures.sshd import SshdServer

CHECKPOINT_MB = 50
# 1 MiB of random bytes written 50 times: one fast write, a hash that means something
OUTPUT_TRAINER = f"""
import json, os
print("step 1/1 loss=0.25", flush=True)
os.makedirs("ckpt/final", exist_ok=True)
block = os.urandom(1 << 20)
with open("ckpt/final/model.bin", "wb") as fh:
    fh.write(block * {CHECKPOINT_MB})
with open("metrics.json", "w") as fh:
    json.dump({{"loss": 0.25, "step": 1}}, fh)
"""
PATHS = ["ckpt/final", "*.json"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs_at(dest: Path) -> dict[str, str]:
    """Every finished file under dest, by relative path, with its SHA-256."""
    return {
        p.relative_to(dest).as_posix(): sha256(p)
        for p in sorted(dest.rglob("*"))
        if p.is_file() and not p.name.endswith(".sleepwatch-part")
    }


@dataclass
class Flow:
    config: Config
    store: Store
    provider: VastProvider
    transports: Transports
    clock: FakeClock
    tmp_path: Path
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.watcher = Watcher(
            self.store,
            self.config,
            self.transports,
            lambda record: self.provider,
            self.clock,
            emit=self.lines.append,
        )
        self.watcher.exits.sleep = RecordingSleep()
        self.control = WatcherControl(self.store, self.watcher, self.clock)

    @property
    def dest(self) -> Path:
        return self.tmp_path / "state" / "outputs" / RUN

    async def launch(self) -> RunRecord:
        run = self.config.run(RUN)
        plan = await plan_launch(
            run, self.config, self.provider, self.clock, sleep=RecordingSleep()
        )
        return await launch(
            plan, run, self.config, self.store, self.transports(plan.record), self.provider
        )

    async def record(self) -> RunRecord:
        record = await self.store.get_run(RUN)
        assert record is not None
        return record

    async def messages(self, kind: MessageKind | None = None) -> list[OutboundMessage]:
        """Queued messages of `kind` (None: every message, whatever its kind)."""
        items = await self.store.pending(self.clock())
        return [item.message for item in items if kind is None or item.message.kind is kind]


@pytest.fixture
async def open_flow(
    tmp_path: Path, sshd: SshdServer, fake_vast: FakeVast
) -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:
        configs: list[Config] = []

        async def opener(trainer: str = OUTPUT_TRAINER, **run_fields: Any) -> Flow:
            add_instance(fake_vast, sshd)
            config = make_config(tmp_path, sshd, fake_vast, long=False, **run_fields)
            (tmp_path / "train.py").write_text(trainer)
            configs.append(config)
            store = await Store.open(tmp_path / "state" / DB_NAME)  # a watcher process's too
            stack.push_async_callback(store.close)
            transports = Transports(config, tmp_path / "state")
            stack.push_async_callback(transports.pool.close)
            provider = vast_provider(fake_vast, RecordingSleep())
            stack.push_async_callback(provider.close)
            return Flow(config, store, provider, transports, FakeClock(utc_now()), tmp_path)

        try:
            yield opener
        finally:
            for config in configs:
                await asyncio.to_thread(stop_supervisor, config, tmp_path)


def hash_outputs_on_delete(fake_vast: FakeVast, dest: Path) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    fake_vast.on_delete = lambda _instance: seen.append(outputs_at(dest))
    return seen


def expected_outputs(tmp_path: Path) -> dict[str, str]:
    remote = run_dir(tmp_path)
    return {
        "ckpt/final/model.bin": sha256(remote / "ckpt/final/model.bin"),
        "metrics.json": sha256(remote / "metrics.json"),
    }


async def test_outputs_arrive_verified_before_the_delete_and_the_end_says_so(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(collect=CollectConfig(paths=PATHS))
    at_delete = hash_outputs_on_delete(fake_vast, flow.dest)
    await flow.launch()
    await wait_for_status(tmp_path, "done")

    assert await flow.watcher.check(RUN) is None

    assert at_delete == [expected_outputs(tmp_path)]  # all there, hashes equal, at the DELETE
    assert INSTANCE not in fake_vast.instances
    [terminal] = await flow.messages(MessageKind.TERMINAL)
    summary = dict(terminal.summary)
    assert summary["outputs"] == "2 files, 52.4 MB in …/outputs/llama-ft, verified"
    assert summary["instance"] == f"{INSTANCE} destroyed (run done)"
    assert await flow.messages(MessageKind.ALERT) == []
    [view] = await flow.control.list_runs(flow.clock())  # /runs shows it
    assert view.outputs == summary["outputs"]


async def test_a_connection_dropped_mid_pull_resumes_where_it_stopped(
    open_flow: Callable[..., Any], fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(collect=CollectConfig(paths=PATHS))
    at_delete = hash_outputs_on_delete(fake_vast, flow.dest)
    seen: list[Progress] = []
    dropped: list[int] = []

    def drop_at_20_mb(progress: Progress) -> None:
        seen.append(progress)
        if progress.bytes_done > 20 << 20 and not dropped:
            dropped.append(progress.bytes_done)
            sshd.stop()  # kills the session: the SFTP channel goes mid-read

    flow.watcher.exits.collector.on_progress = drop_at_20_mb
    await flow.launch()
    await wait_for_status(tmp_path, "done")

    retry_s = await flow.watcher.check(RUN)

    assert retry_s is not None  # teardown waits for the outputs
    assert fake_vast.calls("DELETE") == [] and (await flow.record()).live
    part = flow.dest / "ckpt/final/model.bin.sleepwatch-part"
    pulled_before = part.stat().st_size
    assert 0 < pulled_before < CHECKPOINT_MB << 20
    [view] = await flow.control.list_runs(flow.clock())  # /runs and /status show how far
    assert view.outputs is not None and view.outputs.startswith("collecting 0/2 files, 2")
    assert view.outputs.endswith("; interrupted, resuming")
    sshd.start()
    seen.clear()
    flow.clock.advance(retry_s)

    assert await flow.watcher.check(RUN) is None

    resumed = [p.resumed_from for p in seen if p.current == "ckpt/final/model.bin"]
    assert resumed and resumed[0] == pulled_before  # continued from its size, not from 0
    assert at_delete == [expected_outputs(tmp_path)]
    assert not part.exists()
    [terminal] = await flow.messages(MessageKind.TERMINAL)
    assert dict(terminal.summary)["outputs"].endswith("verified")


FAILING_UPLOAD = "import sys; print('upload refused: 403 Forbidden'); sys.exit(3)"


@pytest.mark.parametrize("destroy", [False, True], ids=["kept", "destroyed"])
async def test_a_failing_collect_command_is_one_message_and_keeps_or_destroys_by_policy(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path, destroy: bool
) -> None:
    collect = CollectConfig(to="command", command=[sys.executable, "-c", FAILING_UPLOAD])
    flow: Flow = await open_flow(collect=collect, destroy_when_uncollected=destroy)
    await flow.launch()
    state = await wait_for_status(tmp_path, "done")
    for _ in range(300):  # the supervisor runs the command after writing the end
        if (state.get("collect") or {}).get("status") == "failed":
            break
        await asyncio.sleep(0.1)
        state = await wait_for_status(tmp_path, "done")

    assert await flow.watcher.check(RUN) is None
    assert await flow.watcher.check(RUN) is None  # an ended run: nothing more, no second word

    [terminal] = await flow.messages()  # one message for one ending: no alert beside it
    assert terminal.kind is MessageKind.TERMINAL
    text = " ".join(terminal.reasons)
    assert "outputs NOT all collected: NOT uploaded" in text
    assert "failed (exit 3)" in text and "upload refused: 403 Forbidden" in text
    summary = dict(terminal.summary)
    assert summary["outputs"].startswith("NOT uploaded")
    if destroy:
        assert "destroyed anyway (destroy_when_uncollected = true)" in text
        assert len(fake_vast.calls("DELETE")) == 1 and INSTANCE not in fake_vast.instances
        assert summary["instance"].endswith("destroyed (run done)")
        assert not terminal.loud  # a done run, nothing left billing: nobody is woken
    else:
        assert "KEPT so nothing is lost (destroy_when_uncollected = false)" in text
        assert fake_vast.calls("DELETE") == [] and INSTANCE in fake_vast.instances
        assert "KEPT" in summary["instance"] and "still billing" in summary["instance"]
        assert terminal.loud and Action.TEARDOWN in terminal.actions  # billing: a human's call
        # the first reminder (every 4 h since the supervisor's own end) says the true reason
        flow.clock.advance(4 * 3600 + 600)
        assert await queue_kept_reminders(flow.store, flow.config, flow.clock()) == 1
        [_, reminder] = await flow.messages()
        assert "outputs were not all collected" in " ".join(reminder.reasons)
    assert not (await flow.record()).live


def cli_config(tmp_path: Path, fake_vast: FakeVast) -> Path:
    """For a watcher process: the run itself is learned from the store (launched above)."""
    path = tmp_path / "sleepwatch.toml"
    path.write_text(
        f"""
[watcher]
state_dir = {str(tmp_path / "state")!r}
python = {sys.executable!r}
remote_root = {str(tmp_path / "remote")!r}

[vast]
api_base = {fake_vast.base_url!r}
"""
    )
    return path


async def watcher_process(config: Path, fake_vast: FakeVast, *args: str) -> Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLEEPWATCH_", "VAST_"))}
    env["VAST_API_KEY"] = fake_vast.api_key
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.app", "--config", str(config), *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_a_watcher_sigkilled_mid_pull_resumes_after_restart(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    # held to 25 MB/s, the 50 MB pull lasts long enough to be killed in the middle
    flow: Flow = await open_flow(collect=CollectConfig(paths=PATHS, max_mb_s=25.0))
    at_delete = hash_outputs_on_delete(fake_vast, flow.dest)
    await flow.launch()
    await wait_for_status(tmp_path, "done")
    config = cli_config(tmp_path, fake_vast)
    part = flow.dest / "ckpt/final/model.bin.sleepwatch-part"

    first = await watcher_process(config, fake_vast, "check", RUN)
    for _ in range(600):
        if part.exists() and part.stat().st_size > 5 << 20:
            break
        assert first.returncode is None, await first.communicate()
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    await first.wait()

    pulled_before = part.stat().st_size
    assert 0 < pulled_before < CHECKPOINT_MB << 20
    assert fake_vast.calls("DELETE") == []
    second = await watcher_process(config, fake_vast, "--verbose", "check", RUN)
    out, err = await asyncio.wait_for(second.communicate(), 90)

    assert second.returncode == 0, err.decode()[-2000:]
    assert f"resuming ckpt/final/model.bin at {pulled_before} bytes" in err.decode()
    assert at_delete == [expected_outputs(tmp_path)]
    assert INSTANCE not in fake_vast.instances


SLOW_TRAINER = """
import json, time
with open("metrics.json", "w") as fh:
    json.dump({"loss": 0.5, "step": 1}, fh)
for step in range(1, 3001):
    print(f"step {step}/3000 loss=0.5", flush=True)
    time.sleep(0.2)
"""


async def test_a_passed_deadline_stops_the_run_collects_then_destroys(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(
        trainer=SLOW_TRAINER, collect=CollectConfig(paths=["*.json"]), deadline_grace=0
    )
    at_delete = hash_outputs_on_delete(fake_vast, flow.dest)
    await flow.launch()
    await wait_for_status(tmp_path, "running")
    assert await flow.watcher.check(RUN) is not None
    record = await flow.record()
    await flow.store.upsert_run(replace(record, deadline_at=flow.clock() - timedelta(minutes=1)))

    assert await flow.watcher.check(RUN) is None

    metrics = sha256(run_dir(tmp_path) / "metrics.json")
    assert at_delete == [{"metrics.json": metrics}]  # stopped, collected, then destroyed
    [terminal] = await flow.messages(MessageKind.TERMINAL)
    assert dict(terminal.summary)["outputs"] == "1 file, 24 B in …/outputs/llama-ft, verified"
    assert (await flow.record()).outcome == "deadline_passed"


async def test_a_pull_that_cannot_finish_within_collect_timeout_is_one_message_and_keeps(
    open_flow: Callable[..., Any], fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(collect=CollectConfig(paths=PATHS), collect_timeout="10m")

    def drop_at_20_mb(progress: Progress) -> None:
        if progress.bytes_done > 20 << 20 and sshd.running:
            sshd.stop()  # and it stays down

    flow.watcher.exits.collector.on_progress = drop_at_20_mb
    await flow.launch()
    await wait_for_status(tmp_path, "done")
    retry_s = await flow.watcher.check(RUN)
    assert retry_s is not None
    flow.clock.advance(601)

    assert await flow.watcher.check(RUN) is None

    [terminal] = await flow.messages()  # the one message of this ending
    text = " ".join(terminal.reasons)
    assert "not verified within collect_timeout (600s)" in text
    assert "KEPT so nothing is lost" in text and terminal.loud
    assert fake_vast.calls("DELETE") == [] and INSTANCE in fake_vast.instances
    assert dict(terminal.summary)["outputs"].startswith("NOT collected")
    assert not (await flow.record()).live


async def test_sleepwatch_collect_pulls_on_demand_with_a_progress_bar(
    open_flow: Callable[..., Any],
    fake_vast: FakeVast,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flow: Flow = await open_flow(collect=CollectConfig(paths=PATHS))
    await flow.launch()
    await wait_for_status(tmp_path, "done")

    code = await collect_now(flow.watcher.exits.collector, flow.store, RUN)

    out, err = capsys.readouterr()
    assert code == 0
    assert (
        out.splitlines()[0] == f"{RUN}: outputs: 2 files, 52.4 MB in …/outputs/llama-ft, verified"
    )
    bars = [line for line in err.splitlines() if line.startswith("[")]
    assert bars[0].startswith("[....") and "(100%)" in bars[-1]
    assert outputs_at(flow.dest) == expected_outputs(tmp_path)
    assert fake_vast.calls("DELETE") == []  # collecting on demand tears nothing down


async def test_a_full_local_disk_is_said_as_such_not_read_as_a_dropped_connection(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(collect=CollectConfig(paths=PATHS))
    part = flow.dest / "ckpt/final/model.bin.sleepwatch-part"
    part.parent.mkdir(parents=True)
    part.symlink_to("/dev/full")  # every write: ENOSPC, in the middle of the SFTP read loop
    await flow.launch()
    await wait_for_status(tmp_path, "done")

    assert await flow.watcher.check(RUN) is None  # settled at once, not retried as pending

    [terminal] = await flow.messages()
    text = " ".join(terminal.reasons)
    assert "ckpt/final/model.bin: cannot write here (No space left on device)" in text
    assert "collected and verified: 1 file, 25 B" in text  # metrics.json came home
    assert fake_vast.calls("DELETE") == []  # kept: destroy_when_uncollected = false


async def test_a_long_pull_gives_the_run_back_between_slices(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(collect=CollectConfig(paths=PATHS, max_mb_s=50.0))
    flow.watcher.exits.collector.slice_s = 0.3  # SLICE_S is 30 s: a /teardown waits no longer
    at_delete = hash_outputs_on_delete(fake_vast, flow.dest)
    await flow.launch()
    await wait_for_status(tmp_path, "done")

    retries: list[float] = []
    while (retry_s := await flow.watcher.check(RUN)) is not None and len(retries) < 100:
        retries.append(retry_s)
        assert not flow.watcher.lock(RUN).locked()  # free for /teardown between slices
        assert fake_vast.calls("DELETE") == []
        flow.clock.advance(retry_s)

    assert len(retries) >= 2 and set(retries) == {1.0}
    assert at_delete == [expected_outputs(tmp_path)]
