"""A human's action from another shell lands while a check is in flight (the check read the run
before it, its probe is held open): the check's later write must not undo it. Every verb that
writes the run row: `teardown` (the run ends), `launch --replace` (a fresh run under the name),
`extend` and `mute` (their own columns). The watcher and the CLI use two connections to one
store file, as two processes do; the supervisor and trainer are real."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from core.control import WatcherControl
from core.launch import launch, plan_launch
from core.local import LocalTransport
from core.models import ExecResult
from core.runtime import utc_now
from core.store import Store
from core.watcher import Watcher
from tests.reliability.helpers import (
    RUN,
    LocalHarness,
    local_config,
    process_gone,
    read_state,
    wait_for,
)

LONG = (
    f"{sys.executable} -c 'import time\nfor i in range(600): print(i, flush=True); time.sleep(0.1)'"
)


class HeldProbe(LocalTransport):
    """Local transport whose `probe` waits for `release` once `hold` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
        lasting: bool = False,
    ) -> ExecResult:
        if self.hold and "probe" in argv:
            self.held.set()
            await self.release.wait()
        return await super().run(argv, timeout_s=timeout_s, max_output_bytes=max_output_bytes)


async def started(tmp_path: Path) -> tuple[LocalHarness, Store, Store, Watcher, HeldProbe]:
    h = LocalHarness(local_config(tmp_path, LONG))
    serve_store = await Store.open(h.db)
    cli_store = await Store.open(h.db)  # the other shell
    transport = HeldProbe()
    watcher = Watcher(
        serve_store, h.config, lambda r: transport, None, utc_now, emit=h.lines.append
    )
    await h.launch(cli_store)
    run_dir = h.config.runs[0].run_dir
    await wait_for(lambda: read_state(run_dir).get("status") == "running", 30)
    assert await watcher.check(RUN) is not None
    return h, serve_store, cli_store, watcher, transport


async def in_flight(watcher: Watcher, transport: HeldProbe) -> asyncio.Task[float | None]:
    transport.hold = True
    check = asyncio.create_task(watcher.check(RUN))
    await asyncio.wait_for(transport.held.wait(), 10)
    return check


async def test_a_teardown_from_another_shell_during_a_check_stays_done(tmp_path: Path) -> None:
    h, serve_store, cli_store, watcher, transport = await started(tmp_path)
    try:
        check = await in_flight(watcher, transport)
        cli = WatcherControl(
            cli_store,
            Watcher(cli_store, h.config, lambda r: LocalTransport(), None, utc_now),
            utc_now,
        )
        text = await cli.teardown(RUN)
        assert "supervisor stopped" in text
        transport.release.set()
        assert await check is None  # the check sees the run has ended and stops watching

        row = await serve_store.get_run(RUN)
        assert row is not None
        assert (row.live, row.status, row.outcome) == (False, "stopped", "teardown_requested")
    finally:
        await serve_store.close()
        await cli_store.close()


async def test_a_relaunch_from_another_shell_during_a_check_is_kept(tmp_path: Path) -> None:
    h, serve_store, cli_store, watcher, transport = await started(tmp_path)
    try:
        check = await in_flight(watcher, transport)
        run = h.config.runs[0]
        pid = int(read_state(run.run_dir)["pid"])
        await asyncio.to_thread(_stop, h)  # the user stops the old supervisor first
        await wait_for(lambda: process_gone(pid), 30, what="the old supervisor to exit")
        plan = await plan_launch(run, h.config, None, lambda: utc_now() + timedelta(seconds=5))
        await launch(plan, run, h.config, cli_store, LocalTransport(), None, replace_live=True)
        transport.release.set()
        await check

        row = await serve_store.get_run(RUN)
        assert row is not None and row.live
        assert row.launched_at == plan.record.launched_at  # the fresh run, not the old one
        assert row.last_status_line is None and row.memory == plan.record.memory
    finally:
        await asyncio.to_thread(_stop, h)
        await serve_store.close()
        await cli_store.close()


async def test_an_extend_and_a_mute_from_another_shell_during_a_check_stand(
    tmp_path: Path,
) -> None:
    h, serve_store, cli_store, watcher, transport = await started(tmp_path)
    try:
        check = await in_flight(watcher, transport)
        cli = WatcherControl(
            cli_store,
            Watcher(cli_store, h.config, lambda r: LocalTransport(), None, utc_now),
            utc_now,
        )
        until = await cli.mute(RUN, 3600, utc_now())
        transport.release.set()
        await check

        row = await serve_store.get_run(RUN)
        assert row is not None and row.muted_until == until
    finally:
        await asyncio.to_thread(_stop, h)
        await serve_store.close()
        await cli_store.close()


def _stop(h: LocalHarness) -> None:
    import subprocess

    from core.supervisor_client import client_for

    client = client_for(h.config, RUN, LocalTransport())
    argv = client.argv(["ctl", "--run-dir", h.config.runs[0].run_dir, "stop"])
    subprocess.run(argv, capture_output=True, timeout=30, check=False)  # noqa: S603
