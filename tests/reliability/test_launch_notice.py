"""A run launched while `serve` runs is looked at at once: `sleepwatch launch` (another process,
here another connection to the same store file) commits the run, the running service hears of
it through the store's data version, opens the run's wait channel and checks it. The periodic
rescan is pushed out to an hour, so only that notice can make the service see the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import core.service
from core.store import Store
from tests.reliability.helpers import RUN, LocalHarness, local_config, wait_for

FAILS_FAST = "import sys; print('Traceback (most recent call last):'); sys.exit(3)"


async def test_a_run_launched_while_serve_runs_is_watched_at_once_and_its_fast_failure_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core.service, "RESCAN_S", 3600.0)
    config = local_config(tmp_path, f"{sys.executable} -c {FAILS_FAST!r}")
    h = LocalHarness(config)
    store = await Store.open(h.db)
    service = h.service(store)
    launcher = await Store.open(h.db)  # `sleepwatch launch` from another shell
    try:
        await service.start()
        await h.launch(launcher)
        await wait_for(lambda: RUN in service._waiters, 10, what="the run's wait channel")
        await wait_for(lambda: "[terminal]" in h.out.getvalue(), 30, what="the terminal message")
    finally:
        await service.stop()
        await launcher.close()
        await store.close()
    text = h.out.getvalue()
    assert text.count("[terminal]") == 1, text
    assert "failed" in text.split("[terminal]")[1]
