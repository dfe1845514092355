"""SSH faults against a real sshd: a probe that never answers (timeout), the connection reset in
the middle of a probe, and sshd stopped and restarted under a running service."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.config import Config, SshConfig
from core.runtime import utc_now
from core.ssh import SshTarget
from core.store import Store
from core.watcher import Watcher
from tests.e2e.test_watch_ssh import Harness, launched, make_config, provider_for
from tests.reliability.helpers import RUN, wait_for, write_probe_wrapper

if TYPE_CHECKING:
    from tests.fixtures.sshd import SshdServer

EXEC_TIMEOUT_S = 2.0


def with_wrapper(config: Config, wrapper: Path) -> Config:
    watcher = config.watcher.model_copy(update={"python": str(wrapper)})
    ssh = SshConfig(exec_timeout=EXEC_TIMEOUT_S, connect_timeout=3)
    return config.model_copy(update={"watcher": watcher, "ssh": ssh})


def hung_probes(wrapper: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(wrapper).encode() in argv and b"probe" in argv:
            found.append(int(entry.name))
    return found


async def watcher_over_wrapper(
    tmp_path: Path, sshd: SshdServer
) -> tuple[Harness, Store, Watcher, Path]:
    wrapper, mode_file = write_probe_wrapper(tmp_path)
    config = with_wrapper(make_config(tmp_path, sshd, steps=400), wrapper)
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    await launched(h, store)
    watcher = Watcher(store, config, h.transport_for, h.provider_for, utc_now, emit=h.lines.append)
    await asyncio.sleep(1.0)
    assert await watcher.check(RUN) is not None
    assert h.lines[-1].split()[1] == "running"
    return h, store, watcher, mode_file


async def stop_run(h: Harness, store: Store, watcher: Watcher) -> None:
    record = await store.get_run(RUN)
    assert record is not None
    await watcher.exits.ctl(record, "stop")
    await store.close()
    await h.pool.close()


async def test_a_probe_that_never_answers_times_out_alerts_after_n_checks_and_recovers(
    tmp_path: Path, sshd: SshdServer
) -> None:
    h, store, watcher, mode_file = await watcher_over_wrapper(tmp_path, sshd)
    wrapper = tmp_path / "python-wrapper"
    try:
        mode_file.write_text("hang")
        assert await watcher.check(RUN) is not None  # returns: the exec timed out
        assert h.lines[-1].split()[1] == "unreachable"
        assert await store.open_alerts(RUN) == {}  # one timeout is not an alert
        await watcher.check(RUN)
        alerts = await store.open_alerts(RUN)
        assert set(alerts) == {"unreachable"}
        assert "timed out" in alerts["unreachable"].message
        # the hung remote commands do not pile up: `timeout` on the far side ends them
        await wait_for(lambda: hung_probes(wrapper) == [], 15, what="hung probes to end")
        mode_file.unlink()
        assert await watcher.check(RUN) is not None
        assert h.lines[-1].split()[1] == "running"
        assert await store.open_alerts(RUN) == {}
        titles = [i.message.title for i in await store.pending(utc_now())]
        recovered = [t for t in titles if "recovered" in t]
        assert len(recovered) == 1
        assert sum("unreachable" in t for t in titles if t not in recovered) == 1, titles
    finally:
        await stop_run(h, store, watcher)


async def test_a_connection_reset_mid_probe_is_one_failed_check_and_the_pool_reconnects(
    tmp_path: Path, sshd: SshdServer
) -> None:
    h, store, watcher, mode_file = await watcher_over_wrapper(tmp_path, sshd)
    try:
        connects = h.pool.stats(_target(h, sshd)).connects
        mode_file.write_text("reset")
        assert await watcher.check(RUN) is not None
        assert h.lines[-1].split()[1] == "unreachable"
        assert not mode_file.exists()  # the reset really happened, once
        assert await watcher.check(RUN) is not None
        assert h.lines[-1].split()[1] == "running"
        assert h.pool.stats(_target(h, sshd)).connects == connects + 1
        assert await store.open_alerts(RUN) == {}
        titles = [i.message.title for i in await store.pending(utc_now())]
        assert not any("unreachable" in t for t in titles)
    finally:
        await stop_run(h, store, watcher)


def _target(h: Harness, sshd: SshdServer) -> SshTarget:
    return SshTarget(sshd.host, sshd.port, sshd.user, h.config.runs[0].key)


@pytest.mark.slow
async def test_sshd_stopped_and_restarted_under_a_running_service_alerts_once_and_finishes(
    tmp_path: Path, sshd: SshdServer
) -> None:
    config = make_config(tmp_path, sshd, steps=150)
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    await launched(h, store)
    service = h.service(store)
    try:
        await service.start()
        await wait_for(lambda: len(h.lines) >= 2, 20, what="two checks")
        sshd.stop()

        async def alert_open() -> bool:
            return "unreachable" in await store.open_alerts(RUN)

        await wait_for(alert_open, 30, what="the unreachable alert")
        sshd.start()

        async def alert_closed() -> bool:
            return not await alert_open()

        await wait_for(alert_closed, 30, what="the recovery")
        await asyncio.wait_for(service.finished[RUN].wait(), 60)
        assert await service.drain_outbox()
    finally:
        await service.stop()
        await store.close()
        await h.pool.close()
    text = h.out.getvalue()
    assert text.count("unreachable for 2 checks in a row") == 1
    assert h.kinds().count("recovery") == 1
    assert h.kinds()[-1] == "terminal" and h.kinds().count("terminal") == 1
    assert [c[0] for c in h.provider.requests].count("destroy") == 1
