"""Any provider per run (issue 15 item 4): a second provider is one module registered beside
Vast (tests/fixtures/other_cloud.py); each run records its provider, and the engine resolves
`provider_for(run)` for the teardown, through the real composition root (`open_engine`), the
real store and the real Vast client against the fake Vast API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
import pytest

from core.config import Config, Secrets, parse_config
from core.console import render_plain
from core.errors import ConfigError
from core.launch import plan_launch
from core.migrate import MIGRATIONS_DIR, apply_migrations
from core.models import RunRecord
from core.providers.registry import VAST, Providers, check_runs
from core.runtime import Engine, open_engine
from core.store import Store
from core.watcher import Watcher
from tests.conftest import FakeClock
from tests.fixtures.other_cloud import OtherCloud, OtherCloudProvider, entry

if TYPE_CHECKING:
    from tests.fixtures.fake_vast import FakeVast, RecordingSleep

pytest_plugins = ["tests.fixtures.fake_vast"]

VAST_ID = "4242"
OTHER_ID = "oc-00c0ffee"


def two_clouds(tmp_path: Path, api_base: str, **other: Any) -> Config:
    run = {"run_dir": str(tmp_path / "runs"), "command": "python train.py"}
    return parse_config(
        {
            "watcher": {"state_dir": str(tmp_path / "state")},
            "vast": {"api_base": api_base},
            "runs": [
                {**run, "name": "on-vast", "instance_id": VAST_ID},
                {**run, "name": "on-other", "instance_id": OTHER_ID, "provider": "othercloud"}
                | other,
            ],
        }
    )


def vast_secrets(key: str) -> Secrets:
    return Secrets.model_validate({"VAST_API_KEY": key, "SLEEPWATCH_TELEGRAM_TOKEN": None})


async def ended_run(engine: Engine, name: str, clock: FakeClock, sleep: RecordingSleep) -> None:
    """Plan the run as `sleepwatch launch` does (its provider read through the engine), and
    store it as a run the watcher saw end `done` (the policy then destroys its instance)."""
    run = engine.config.run(name)
    provider = engine.providers.named(run.provider)
    plan = await plan_launch(run, engine.config, provider, clock, sleep=sleep)
    now = clock()
    await engine.store.upsert_run(replace(plan.record, status="done", ended_at=now))


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def test_each_run_is_torn_down_through_its_own_provider(
    tmp_path: Path,
    fake_vast: FakeVast,
    recording_sleep: RecordingSleep,
    clock: FakeClock,
    stack: AsyncExitStack,
) -> None:
    fake_vast.add_instance(VAST_ID, dph_total=0.412)
    cloud = OtherCloud()
    cloud.add(OTHER_ID, price_per_hour=1.1)
    config = two_clouds(tmp_path, fake_vast.base_url)
    secrets = vast_secrets(fake_vast.api_key)
    engine = await open_engine(config, secrets, stack, registry=(VAST, entry(cloud)))
    for name in ("on-vast", "on-other"):
        await ended_run(engine, name, clock, recording_sleep)
    watcher = Watcher(engine.store, config, engine.transport_for, engine.provider_for, clock)
    watcher.exits.sleep = recording_sleep

    assert await watcher.check("on-other") is None
    assert [verb for verb, _ in cloud.calls] == ["show", "show", "destroy", "show", "show"]
    assert {request.instance_id for request in fake_vast.requests} == {VAST_ID}
    assert fake_vast.calls("DELETE") == []  # Vast never heard of the othercloud run
    assert await watcher.check("on-vast") is None
    assert [r.instance_id for r in fake_vast.calls("DELETE")] == [VAST_ID]
    assert VAST_ID not in fake_vast.instances
    assert all(instance_id == OTHER_ID for _, instance_id in cloud.calls)
    assert cloud.instances[OTHER_ID]["status"] == "TERMINATED"

    for name, provider in (("on-vast", "vast"), ("on-other", "othercloud")):
        record = await engine.store.get_run(name)
        assert record is not None
        assert (record.provider, record.teardown, record.live) == (provider, "destroyed", False)
    other = await engine.store.get_run("on-other")
    assert other is not None and other.dph_total == 1.1  # read through its adapter at launch
    texts = [render_plain(item.message) for item in await engine.store.pending(far_future())]
    assert any("on-other" in t and f"{OTHER_ID} destroyed" in t for t in texts), texts


async def test_a_still_billing_alert_points_at_the_runs_own_console(
    tmp_path: Path, clock: FakeClock, recording_sleep: RecordingSleep, stack: AsyncExitStack
) -> None:
    cloud = OtherCloud(refuse_deletes=True)
    cloud.add(OTHER_ID)
    config = two_clouds(tmp_path, "http://127.0.0.1:9")  # Vast is never asked
    engine = await open_engine(config, vast_secrets(""), stack, registry=(VAST, entry(cloud)))
    await ended_run(engine, "on-other", clock, recording_sleep)
    watcher = Watcher(engine.store, config, engine.transport_for, engine.provider_for, clock)
    watcher.exits.sleep = recording_sleep

    assert await watcher.check("on-other") is not None  # still billing: it will retry
    texts = [render_plain(item.message) for item in await engine.store.pending(far_future())]
    billing = [t for t in texts if "STILL BILLING" in t]
    assert billing and "console.othercloud.invalid/instances/oc-00c0ffee" in billing[0]
    assert "cloud.vast.ai" not in "\n".join(texts)


async def test_the_engine_refuses_an_id_its_provider_would_never_accept(
    tmp_path: Path, stack: AsyncExitStack
) -> None:
    registry = (VAST, entry(OtherCloud()))
    config = two_clouds(tmp_path, "http://127.0.0.1:9", instance_id="4243")
    with pytest.raises(ConfigError) as refused:
        await open_engine(config, vast_secrets(""), stack, registry=registry)
    assert str(refused.value).startswith("runs[1].instance_id (on-other): '4243': an othercloud")
    assert not (tmp_path / "state").exists()  # refused before anything was opened
    # Without othercloud registered, the run's provider is what is wrong; Vast's ids stay Vast's.
    swapped = two_clouds(tmp_path, "http://127.0.0.1:9", provider="vast")
    with pytest.raises(
        ConfigError, match=r"runs\[1\].instance_id \(on-other\): 'oc-00c0ffee': a Vast"
    ):
        check_runs(swapped.runs, registry)
    with pytest.raises(ConfigError, match=r"runs\[1\].provider \(on-other\): 'othercloud' is not"):
        check_runs(two_clouds(tmp_path, "http://127.0.0.1:9").runs, (VAST,))


def test_a_provider_that_is_not_open_says_why() -> None:
    providers = Providers({"othercloud": OtherCloudProvider(OtherCloud())}, {"vast": "no key"})
    record = RunRecord(name="r", run_dir="/r", launched_at=FakeClock()(), instance_id="4242")
    assert providers.for_run(record) is None  # a run records "vast" unless told otherwise
    assert providers.why_not("vast") == "provider 'vast' is not configured: no key"
    assert "not known" in providers.why_not("elsewhere")
    other = replace(record, instance_id=OTHER_ID, provider="othercloud")
    assert providers.for_run(other) is providers.named("othercloud")
    assert providers.for_run(replace(other, instance_id=None)) is None


def test_a_run_is_on_vast_unless_it_names_its_provider(tmp_path: Path) -> None:
    config = two_clouds(tmp_path, "http://127.0.0.1:9")
    assert [run.provider for run in config.runs] == ["vast", "othercloud"]
    with pytest.raises(ConfigError, match="provider"):
        two_clouds(tmp_path, "http://127.0.0.1:9", provider="Other Cloud; rm")


async def test_a_run_stored_before_runs_recorded_their_provider_is_a_vast_run(
    tmp_path: Path,
) -> None:
    older = tmp_path / "migrations"
    older.mkdir()
    for sql in sorted(MIGRATIONS_DIR.glob("00[1234]_*.sql")):
        (older / sql.name).write_text(sql.read_text())
    db = tmp_path / "old.sqlite3"
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        assert await apply_migrations(conn, db_path=db, directory=older) == [1, 2, 3, 4]
        await conn.execute(
            "INSERT INTO runs (name, run_dir, launched_at, instance_id, live, status, attempt, "
            "max_attempts, log_attempt, log_offset, memory) VALUES "
            "('old', '/r', '2026-11-28T03:00:00.000000Z', '4242', 1, 'running', 1, 3, 1, 0, '{}')"
        )
    store = await Store.open(db)
    try:
        record = await store.get_run("old")
        assert record is not None and record.provider == "vast"
        await store.upsert_run(replace(record, name="new", provider="othercloud"))
        again = await store.get_run("new")
        assert again is not None and again.provider == "othercloud"
    finally:
        await store.close()


def far_future() -> datetime:
    return FakeClock().advance(10 * 365 * 86400)
