"""The Vast API failing during a teardown, through the real VastProvider against the fake Vast
API: the destroy is retried with backoff, and when it still fails the user is told in plain
words that the instance is still billing; the run stays watched until the destroy goes through.
Waits go to an injected sleep that records them, so nothing here waits minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest_asyncio
from pydantic import SecretStr

from core.console import render_plain
from core.exit_plan import RETRY_TEARDOWN_S
from core.exits import ExitHandler
from core.local import LocalTransport
from core.models import RunRecord
from core.providers import VastProvider
from core.store import Store
from tests.reliability.helpers import INSTANCE, RUN, local_config

if TYPE_CHECKING:
    from tests.conftest import FakeClock
    from tests.fixtures.fake_vast import FakeVast, RecordingSleep


@dataclass
class Teardown:
    store: Store
    exits: ExitHandler
    record: RunRecord
    sleep: RecordingSleep

    async def texts(self) -> list[str]:
        return [render_plain(item.message) for item in await self.store.pending(_far_future())]


def _far_future() -> datetime:
    return datetime(2100, 1, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def teardown(
    tmp_path: Path, fake_vast: FakeVast, recording_sleep: RecordingSleep, clock: FakeClock
) -> AsyncIterator[Teardown]:
    fake_vast.add_instance(INSTANCE, dph_total=0.412)
    config = local_config(tmp_path, "true")
    store = await Store.open(tmp_path / "db.sqlite3")
    provider = VastProvider(
        fake_vast.base_url, SecretStr(fake_vast.api_key), sleep=recording_sleep, max_retries=2
    )
    exits = ExitHandler(
        store,
        config,
        lambda r: LocalTransport(),
        lambda r: provider,
        clock,
        lambda: None,
        sleep=recording_sleep,
    )
    # A run the service saw end `done` (the path a restart takes: ended_at set, state gone)
    record = RunRecord(
        name=RUN,
        run_dir=str(tmp_path / "run"),
        launched_at=clock(),
        instance_id=INSTANCE,
        status="done",
        ended_at=clock(),
        dph_total=0.412,
    )
    await store.upsert_run(record)
    yield Teardown(store, exits, record, recording_sleep)
    await provider.close()
    await store.close()


async def test_a_destroy_that_keeps_failing_is_retried_with_backoff_then_reported_as_billing(
    teardown: Teardown, fake_vast: FakeVast
) -> None:
    fake_vast.destroy_never_succeeds = True
    interval = await teardown.exits.finish(teardown.record, None, None)
    assert interval == RETRY_TEARDOWN_S  # watched again in 10 minutes, not dropped
    # 6 destroy attempts, each with the client's own 3 tries on HTTP 500
    assert len(fake_vast.calls("DELETE")) == 6 * 3
    teardown_waits = [d for d in teardown.sleep.delays if d >= 5]
    assert teardown_waits == [5, 10, 20, 40, 80]  # the teardown's backoff between attempts
    texts = await teardown.texts()
    billing = [t for t in texts if "STILL BILLING" in t]
    assert len(billing) == 1
    assert f"instance {INSTANCE} is STILL BILLING at $0.41/h" in billing[0]
    assert "destroy failed 6 times" in billing[0]
    assert "Destroy it by hand at https://cloud.vast.ai/instances/" in billing[0]
    terminal = [t for t in texts if t.startswith("[terminal]") or "[terminal]" in t]
    assert len(terminal) == 1 and "NOT destroyed" in terminal[0] and "still billing" in terminal[0]
    record = await teardown.store.get_run(RUN)
    assert record is not None and record.live  # not forgotten while it bills


async def test_a_teardown_retry_within_the_hour_does_not_repeat_the_billing_alert(
    teardown: Teardown, fake_vast: FakeVast, clock: FakeClock
) -> None:
    fake_vast.destroy_never_succeeds = True
    await teardown.exits.finish(teardown.record, None, None)
    clock.advance(RETRY_TEARDOWN_S)
    record = await teardown.store.get_run(RUN)
    assert record is not None
    await teardown.exits.finish(record, None, None)
    texts = await teardown.texts()
    assert sum("STILL BILLING" in t for t in texts) == 1


async def test_a_destroy_that_fails_then_recovers_on_the_next_attempt_is_verified_once(
    teardown: Teardown, fake_vast: FakeVast
) -> None:
    fake_vast.script((500, {"error": "busy"}), (500, {"error": "busy"}), (500, {}), method="DELETE")
    interval = await teardown.exits.finish(teardown.record, None, None)
    assert interval is None
    assert INSTANCE not in fake_vast.instances
    assert len(fake_vast.calls("DELETE")) == 4  # 3 failed tries, one more after the backoff
    texts = await teardown.texts()
    assert not any("STILL BILLING" in t for t in texts)
    assert sum(f"{INSTANCE} destroyed" in t for t in texts) == 1


async def test_the_user_is_told_when_a_billing_instance_is_finally_destroyed(
    teardown: Teardown, fake_vast: FakeVast, clock: FakeClock
) -> None:
    fake_vast.destroy_never_succeeds = True
    await teardown.exits.finish(teardown.record, None, None)
    fake_vast.destroy_never_succeeds = False
    clock.advance(RETRY_TEARDOWN_S)
    record = await teardown.store.get_run(RUN)
    assert record is not None
    assert await teardown.exits.finish(record, None, None) is None
    assert INSTANCE not in fake_vast.instances
    texts = await teardown.texts()
    assert any("destroyed" in t and "NOT destroyed" not in t for t in texts), texts


async def test_the_run_row_keeps_its_teardown_outcome_after_finish(
    teardown: Teardown, fake_vast: FakeVast
) -> None:
    await teardown.exits.finish(teardown.record, None, None)
    record = await teardown.store.get_run(RUN)
    assert record is not None and not record.live
    assert record.teardown == "destroyed" and record.torn_down_at is not None
