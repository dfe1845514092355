"""Issue 5 acceptance through the watcher: the real VastProvider (aiohttp) against the fake Vast
API on 127.0.0.1, the real sshd fixture as the instance's SSH endpoint, a real supervisor.

Launch by instance id (loading waits, SSH from the instance, label, registration), the gate from
the command line, verified teardown through the terminal path (429 and 500s survived, a destroy
that never succeeds is "still billing"), a lost or stopped instance, deadlines and /extend, and
the cost so far."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.config import Config
from core.control import WatcherControl
from core.launch import launch, plan_launch
from core.models import MessageKind, OutboundMessage, RunRecord
from core.providers import VastProvider
from core.runtime import utc_now
from core.store import Store
from core.watcher import Watcher
from tests.conftest import FakeClock
from tests.e2e.vast_helpers import (
    DPH,
    INSTANCE,
    RUN,
    Transports,
    add_instance,
    make_config,
    run_dir,
    stop_supervisor,
    vast_provider,
    wait_for_status,
    wait_for_step,
)
from tests.fixtures.fake_vast import Answer, RecordingSleep, vast_instance_doc

if TYPE_CHECKING:
    from tests.fixtures.fake_vast import FakeVast
    from tests.fixtures.sshd import SshdServer


@dataclass
class Flow:
    """One run on the fake instance: config, store, provider, watcher, with recording sleeps."""

    config: Config
    store: Store
    provider: VastProvider
    transports: Transports
    clock: FakeClock
    provider_sleep: RecordingSleep = field(default_factory=RecordingSleep)
    exit_sleep: RecordingSleep = field(default_factory=RecordingSleep)
    launch_sleep: RecordingSleep = field(default_factory=RecordingSleep)
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
        self.watcher.exits.sleep = self.exit_sleep
        self.control = WatcherControl(self.store, self.watcher, self.clock)

    async def launch(self) -> RunRecord:
        run = self.config.run(RUN)
        plan = await plan_launch(
            run, self.config, self.provider, self.clock, sleep=self.launch_sleep
        )
        return await launch(
            plan, run, self.config, self.store, self.transports(plan.record), self.provider
        )

    async def record(self) -> RunRecord:
        record = await self.store.get_run(RUN)
        assert record is not None
        return record

    async def messages(self) -> list[OutboundMessage]:
        return [item.message for item in await self.store.pending(self.clock())]


@pytest.fixture
async def open_flow(
    tmp_path: Path, sshd: SshdServer, fake_vast: FakeVast
) -> AsyncIterator[Callable[..., Any]]:
    """`await open_flow(max_retries=..., **run_fields)`; everything is closed (and the
    supervisor daemon stopped) at teardown."""
    async with AsyncExitStack() as stack:
        configs: list[Config] = []

        async def opener(*, max_retries: int = 4, long: bool = True, **run_fields: Any) -> Flow:
            add_instance(fake_vast, sshd)
            config = make_config(tmp_path, sshd, fake_vast, long=long, **run_fields)
            configs.append(config)
            store = await Store.open(tmp_path / "state" / "db.sqlite3")
            stack.push_async_callback(store.close)
            transports = Transports(config, tmp_path / "state")
            stack.push_async_callback(transports.pool.close)
            sleep = RecordingSleep()
            provider = vast_provider(fake_vast, sleep, max_retries=max_retries)
            stack.push_async_callback(provider.close)
            clock = FakeClock(utc_now())
            return Flow(config, store, provider, transports, clock, provider_sleep=sleep)

        try:
            yield opener
        finally:
            for config in configs:
                await asyncio.to_thread(stop_supervisor, config, tmp_path)


def deletes(fake: FakeVast) -> int:
    return len(fake.calls("DELETE"))


def stops(fake: FakeVast) -> list[Any]:
    return [r.body for r in fake.calls("PUT") if (r.body or {}).get("state") == "stopped"]


# -- launch by instance id -------------------------------------------------------------------


async def test_launch_waits_for_loading_takes_ssh_from_the_instance_labels_and_registers(
    open_flow: Callable[..., Any], fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(long=False)
    loading = [
        vast_instance_doc(INSTANCE, actual_status=None, ssh_host=None, ssh_port=None),
        vast_instance_doc(INSTANCE, actual_status="loading", ssh_host=None, ssh_port=None),
    ]
    fake_vast.script(*(Answer(200, {"instances": doc}) for doc in loading), method="GET")

    record = await flow.launch()

    assert len(fake_vast.calls("GET")) == 3
    assert flow.launch_sleep.delays == [10.0, 10.0]  # one bounded poll per loading answer
    assert (record.ssh_host, record.ssh_port) == (sshd.host, sshd.port)
    assert record.instance_id == INSTANCE and record.dph_total == pytest.approx(DPH)
    assert fake_vast.instances[INSTANCE]["label"] == RUN
    assert [r.body for r in fake_vast.calls("PUT")] == [{"label": RUN}]
    assert all(r.authorized for r in fake_vast.requests)
    stored = await flow.record()
    assert stored.live and stored.ssh_port == sshd.port
    state = await wait_for_status(tmp_path, "done")  # the supervisor really ran over SSH
    assert state["run"] == RUN


# -- the gate and `launch` from the command line ---------------------------------------------


def cli_config(tmp_path: Path, sshd: SshdServer, fake: FakeVast) -> Path:
    trainer = tmp_path / "train.py"
    trainer.write_text("print('step 1/1', flush=True)\n")
    text = f"""
[watcher]
state_dir = {str(tmp_path / "state")!r}
python = {sys.executable!r}
remote_root = {str(tmp_path / "remote")!r}

[vast]
api_base = {fake.base_url!r}

[[runs]]
name = {RUN!r}
instance_id = {INSTANCE!r}
user = {sshd.user!r}
key = {str(sshd.key_path)!r}
run_dir = {str(run_dir(tmp_path))!r}
command = {f"{sys.executable} {trainer}"!r}
max_attempts = 1
heartbeat_s = 0.3

[runs.gate]
params_b = 7
method = "lora"
min_cuda = 12.1
"""
    path = tmp_path / "sleepwatch.toml"
    path.write_text(text)
    return path


async def sleepwatch(config: Path, fake: FakeVast, *args: str) -> tuple[int, str, str]:
    """The real entry point as a subprocess; the fake Vast API keeps serving meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLEEPWATCH_", "VAST_"))}
    env["VAST_API_KEY"] = fake.api_key
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.app",
        "--config",
        str(config),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def row(table: str, check: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(check + " "))


async def test_gate_prints_the_rows_in_the_right_units_and_passes(
    tmp_path: Path, sshd: SshdServer, fake_vast: FakeVast
) -> None:
    add_instance(fake_vast, sshd)
    rc, out, err = await sleepwatch(cli_config(tmp_path, sshd, fake_vast), fake_vast, "gate", RUN)
    assert rc == 0, err
    assert "24.0 GiB (1x RTX 4090 24564 MB)" in row(out, "VRAM")
    assert ">= 15.6 GiB (lora, 7B params)" in row(out, "VRAM")
    assert row(out, "VRAM").endswith("ok")
    assert "62.5 GiB (64000 MB)" in row(out, "CPU RAM") and row(out, "CPU RAM").endswith("ok")
    assert "100.0 GB" in row(out, "disk") and ">= 30.8 GB" in row(out, "disk")
    assert "0.995" in row(out, "reliability") and ">= 0.9" in row(out, "reliability")
    assert row(out, "CUDA").endswith("ok")
    assert f"gate passed for instance {INSTANCE}" in out
    assert not fake_vast.calls("PUT") and not fake_vast.calls("DELETE")
    assert not (run_dir(tmp_path) / "state.json").exists()  # the gate alone launches nothing


async def test_a_refusing_gate_exits_1_and_launch_refuses_unless_forced(
    tmp_path: Path, sshd: SshdServer, fake_vast: FakeVast
) -> None:
    add_instance(
        fake_vast, sshd, gpu_name="RTX 3060", gpu_ram=12288, reliability2=0.85, disk_space=20.0
    )
    config = cli_config(tmp_path, sshd, fake_vast)
    try:
        rc, out, _ = await sleepwatch(config, fake_vast, "gate", RUN)
        assert rc == 1
        assert "12.0 GiB (1x RTX 3060 12288 MB)" in row(out, "VRAM")
        assert row(out, "VRAM").endswith("FAIL")
        assert "20.0 GB" in row(out, "disk") and row(out, "disk").endswith("FAIL")
        assert row(out, "reliability").endswith("FAIL")
        assert row(out, "CPU RAM").endswith("ok")
        assert f"gate FAILED for instance {INSTANCE}: VRAM, disk, reliability" in out

        rc, out, err = await sleepwatch(config, fake_vast, "launch", RUN)
        assert rc != 0
        assert "the gate failed (VRAM, disk, reliability)" in err and "--force" in err
        assert "FAIL" in out  # the table is shown before the refusal
        assert not fake_vast.calls("PUT")
        assert not (run_dir(tmp_path) / "state.json").exists()

        rc, out, err = await sleepwatch(config, fake_vast, "launch", RUN, "--force")
        assert rc == 0, err
        assert fake_vast.instances[INSTANCE]["label"] == RUN
        await wait_for_status(tmp_path, "done")  # started over SSH at the instance's address
    finally:
        await asyncio.to_thread(stop_supervisor, make_config(tmp_path, sshd, fake_vast), tmp_path)


# -- verified teardown through the terminal path --------------------------------------------


@pytest.mark.parametrize(
    ("max_retries", "provider_delays", "exit_delays"),
    [
        # 3.0: between the two "gone" reads that verify the destroy
        (4, [7.0, 4.0, 8.0], [3.0]),  # the client absorbs them: Retry-After, then its backoff
        (0, [], [5.0, 10.0, 20.0, 3.0]),  # each fails the call: destroy_verified backs off
    ],
    ids=["client-retries", "teardown-retries"],
)
async def test_a_finished_run_is_destroyed_and_verified_through_a_429_and_two_500s(
    open_flow: Callable[..., Any],
    fake_vast: FakeVast,
    tmp_path: Path,
    max_retries: int,
    provider_delays: list[float],
    exit_delays: list[float],
) -> None:
    flow: Flow = await open_flow(long=False, max_retries=max_retries)
    await flow.launch()
    await wait_for_status(tmp_path, "done")
    fake_vast.script(
        Answer(429, {"msg": "API requests too frequent"}, {"Retry-After": "7"}),
        Answer(500, {"error": "internal"}),
        Answer(500, {"error": "internal"}),
        method="DELETE",
    )

    assert await flow.watcher.check(RUN) is None

    assert deletes(fake_vast) == 4 and INSTANCE not in fake_vast.instances
    assert fake_vast.calls("GET")[-1].instance_id == INSTANCE  # read back after the destroy
    assert flow.provider_sleep.delays == provider_delays
    assert flow.exit_sleep.delays == exit_delays
    assert stops(fake_vast) == []  # destroyed, never just stopped
    record = await flow.record()
    assert not record.live and record.status == "done"
    [terminal] = await flow.messages()
    assert terminal.kind is MessageKind.TERMINAL
    summary = dict(terminal.summary)
    assert summary["instance"] == f"{INSTANCE} destroyed (run done)"
    assert summary["cost"].startswith("$")
    # no [runs.collect]: the run's own logs still came home, verified, and the end says so
    logs = r"logs only \(\d+ files?, .+ in …/outputs/llama-ft, verified\) — set \[runs.collect\]"
    assert re.match(logs, summary["outputs"]), summary["outputs"]
    assert (tmp_path / "state" / "outputs" / RUN / "attempts" / "1.log").is_file()


async def test_the_record_keeps_the_verified_teardown_after_a_terminal_destroy(
    open_flow: Callable[..., Any], tmp_path: Path
) -> None:
    flow: Flow = await open_flow(long=False)
    await flow.launch()
    await wait_for_status(tmp_path, "done")
    await flow.watcher.check(RUN)
    record = await flow.record()
    assert record.teardown == "destroyed"
    assert record.torn_down_at is not None
    [view] = await flow.control.list_runs(flow.clock())
    assert view.teardown == "destroyed"


async def test_a_destroy_that_never_succeeds_alerts_still_billing_and_keeps_retrying(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(long=False, max_retries=0)
    await flow.launch()
    await wait_for_status(tmp_path, "done")
    fake_vast.destroy_never_succeeds = True

    retry_s = await flow.watcher.check(RUN)

    assert retry_s is not None and retry_s > 0  # still scheduled: the instance bills
    assert deletes(fake_vast) == 6
    assert flow.exit_sleep.delays == [5.0, 10.0, 20.0, 40.0, 80.0]
    record = await flow.record()
    assert record.live and record.next_check_at is not None and record.ended_at is not None
    assert INSTANCE in fake_vast.instances and stops(fake_vast) == []
    billing = [m for m in await flow.messages() if m.kind is MessageKind.ALERT]
    assert [m.title for m in billing] == [f"instance {INSTANCE} is STILL BILLING at $0.41/h"]
    assert "destroy failed 6 times" in billing[0].reasons[0]
    assert "HTTP 500" in billing[0].reasons[0]
    assert "by hand" in billing[0].reasons[1]
    terminal = next(m for m in await flow.messages() if m.kind is MessageKind.TERMINAL)
    assert "NOT destroyed" in dict(terminal.summary)["instance"]

    fake_vast.destroy_never_succeeds = False  # Vast recovers; the scheduled retry destroys it
    flow.clock.advance(retry_s)
    assert await flow.watcher.check(RUN) is None
    assert INSTANCE not in fake_vast.instances and deletes(fake_vast) == 7
    assert not (await flow.record()).live


async def test_a_retry_that_finally_destroys_tells_the_human(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(long=False, max_retries=0)
    await flow.launch()
    await wait_for_status(tmp_path, "done")
    fake_vast.destroy_never_succeeds = True
    retry_s = await flow.watcher.check(RUN)
    assert retry_s is not None
    before = len(await flow.messages())
    fake_vast.destroy_never_succeeds = False
    flow.clock.advance(retry_s)
    await flow.watcher.check(RUN)
    later = (await flow.messages())[before:]
    assert any("destroyed" in m.title for m in later), [m.title for m in later]


# -- the instance as the provider sees it when SSH fails -------------------------------------


async def running_and_checked(flow: Flow, tmp_path: Path) -> None:
    await flow.launch()
    await wait_for_status(tmp_path, "running")
    assert await flow.watcher.check(RUN) is not None
    assert flow.lines[-1].split()[1] == "running"


async def test_a_lost_instance_is_alerted_then_destroyed_by_the_fail_policy(
    open_flow: Callable[..., Any], fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path
) -> None:
    flow: Flow = await open_flow()
    await running_and_checked(flow, tmp_path)
    fake_vast.go_offline(INSTANCE)
    sshd.stop()

    assert await flow.watcher.check(RUN) is not None  # one answer is never enough
    assert deletes(fake_vast) == 0 and (await flow.record()).live
    assert await flow.watcher.check(RUN) is None

    assert deletes(fake_vast) == 1 and INSTANCE not in fake_vast.instances
    assert stops(fake_vast) == []
    assert not (await flow.record()).live
    [alert] = [m for m in await flow.messages() if m.kind is MessageKind.ALERT]
    assert any("offline" in r and "will not come back" in r for r in alert.reasons)


async def test_a_lost_instance_is_kept_when_destroy_on_fail_is_false(
    open_flow: Callable[..., Any], fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(destroy_on_fail=False)
    await running_and_checked(flow, tmp_path)
    fake_vast.go_offline(INSTANCE)
    sshd.stop()
    await flow.watcher.check(RUN)
    await flow.watcher.check(RUN)  # lost: two checks in a row
    assert deletes(fake_vast) == 0
    assert INSTANCE in fake_vast.instances
    assert any(m.kind is MessageKind.ALERT for m in await flow.messages())


async def test_a_stopped_instance_under_a_live_run_is_an_alert_not_a_teardown(
    open_flow: Callable[..., Any], fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path
) -> None:
    flow: Flow = await open_flow()
    await running_and_checked(flow, tmp_path)
    fake_vast.go_offline(INSTANCE, "stopped")  # outbid
    sshd.stop()

    assert await flow.watcher.check(RUN) is not None

    assert deletes(fake_vast) == 0 and (await flow.record()).live
    assert "instance_stopped" in await flow.store.open_alerts(RUN)
    [alert] = [m for m in await flow.messages() if m.kind is MessageKind.ALERT]
    assert any("stopped while the run was live" in r for r in alert.reasons)


# -- deadline, /extend and the cost so far --------------------------------------------------


async def passed_deadline(flow: Flow, tmp_path: Path, *, ago_s: float) -> None:
    await running_and_checked(flow, tmp_path)
    record = await flow.record()
    await flow.store.upsert_run(
        replace(record, deadline_at=flow.clock() - timedelta(seconds=ago_s))
    )


async def test_a_passed_deadline_tears_down_only_after_the_grace(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(deadline_grace="10m")
    await passed_deadline(flow, tmp_path, ago_s=60)

    assert await flow.watcher.check(RUN) is not None  # inside the grace: a warning only
    assert deletes(fake_vast) == 0
    assert "deadline" in await flow.store.open_alerts(RUN)
    [alert] = [m for m in await flow.messages() if m.kind is MessageKind.ALERT]
    assert any("unless you /extend" in r for r in alert.reasons)

    flow.clock.advance(540)  # grace over
    assert await flow.watcher.check(RUN) is None
    assert deletes(fake_vast) == 1 and INSTANCE not in fake_vast.instances
    assert stops(fake_vast) == []
    assert not (await flow.record()).live
    await wait_for_status(tmp_path, "stopped")  # the supervisor was told to stop first


async def test_extend_moves_the_deadline_and_prevents_the_teardown(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(deadline_grace="10m")
    await passed_deadline(flow, tmp_path, ago_s=60)
    await flow.watcher.check(RUN)

    moved = await flow.control.extend(RUN, 2 * 3600, flow.clock())

    assert moved.deadline_at == flow.clock() + timedelta(hours=2)
    flow.clock.advance(3600)  # past the old grace by far
    assert await flow.watcher.check(RUN) is not None
    assert deletes(fake_vast) == 0 and (await flow.record()).live
    assert "deadline" not in await flow.store.open_alerts(RUN)


async def test_the_cost_so_far_is_hours_times_the_instance_price(
    open_flow: Callable[..., Any], tmp_path: Path
) -> None:
    flow: Flow = await open_flow()
    await running_and_checked(flow, tmp_path)
    await wait_for_step(tmp_path)  # "running" comes before the trainer's first line
    flow.clock.advance(2.5 * 3600)

    [listed] = await flow.control.list_runs(flow.clock())
    viewed = await flow.control.view(RUN, flow.clock())

    assert listed.dph_total == pytest.approx(DPH)
    assert listed.cost_usd == pytest.approx(round(2.5 * DPH, 2))
    assert viewed.cost_usd == listed.cost_usd and viewed.instance_id == INSTANCE
    assert viewed.tail and "step" in viewed.tail[-1]


async def test_the_record_keeps_the_verified_teardown_after_a_deadline_destroy(
    open_flow: Callable[..., Any], tmp_path: Path
) -> None:
    flow: Flow = await open_flow(deadline_grace="1m")
    await passed_deadline(flow, tmp_path, ago_s=120)
    assert await flow.watcher.check(RUN) is None
    record = await flow.record()
    assert (record.teardown, record.torn_down_at) == ("destroyed", flow.clock())


async def test_a_failed_deadline_destroy_stays_scheduled_to_retry(
    open_flow: Callable[..., Any], fake_vast: FakeVast, tmp_path: Path
) -> None:
    flow: Flow = await open_flow(deadline_grace="1m", max_retries=0)
    await passed_deadline(flow, tmp_path, ago_s=120)
    fake_vast.destroy_never_succeeds = True

    retry_s = await flow.watcher.check(RUN)

    titles = [m.title for m in await flow.messages()]
    assert f"instance {INSTANCE} is STILL BILLING at $0.41/h" in titles
    record = await flow.record()
    assert retry_s is not None or record.next_check_at is not None
