"""A run on this machine under the real supervisor, with a trainer written by the test."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig, WatcherConfig
from core.launch import launch, plan_launch
from core.local import LocalTransport
from core.models import RunRecord
from core.ports import Provider
from core.runtime import utc_now
from core.store import Store


def local_config(
    tmp_path: Path, name: str, trainer: str, *, instance_id: str | None = None
) -> Config:
    script = tmp_path / f"{name}.py"
    script.write_text(trainer)
    run = RunConfig(
        name=name,
        local=True,
        instance_id=instance_id,
        run_dir=str(tmp_path / "runs" / name),
        command=f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
        env={"PYTHONUNBUFFERED": "1"},
        max_attempts=1,
        backoff_s=0.2,
        heartbeat_s=0.3,
        dph_total=1.25,
    )
    return Config(
        watcher=WatcherConfig(state_dir=tmp_path / "state", python=sys.executable, wait_timeout=10),
        cadence=CadenceConfig(scale=1 / 60),
        thresholds=ThresholdsConfig(heartbeat_stale=5, stall_after=5, soft_hold=30),
        runs=[run],
    )


async def launch_local(
    config: Config, store: Store, local: LocalTransport, provider: Provider | None = None
) -> RunRecord:
    run = config.runs[0]
    plan = await plan_launch(run, config, provider, utc_now)
    return await launch(plan, run, config, store, local, provider)


def file_tail(path: Path, size: int = 1 << 20) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read()
    except FileNotFoundError:
        return b""


async def wait_for_file_containing(path: Path, needle: bytes, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while needle not in file_tail(path):
            await asyncio.sleep(0.05)
