"""Building blocks for the Vast flow tests: a run whose only address is a Vast instance id on
the fake Vast API, whose SSH endpoint is the real sshd fixture, and whose supervisor really runs
(on this machine, started over SSH)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig, WatcherConfig
from core.models import RunRecord
from core.providers import VastProvider
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.supervisor_client import supervisor_argv

if TYPE_CHECKING:
    from tests.fixtures.fake_vast import FakeVast, RecordingSleep
    from tests.fixtures.sshd import SshdServer

INSTANCE = "4242"
RUN = "llama-ft"
DPH = 0.412

QUICK_TRAINER = """
import sys, time
for step in range(1, 4):
    print(f"step {step}/3 loss=0.5", flush=True)
    time.sleep(0.05)
"""
LONG_TRAINER = """
import sys, time
for step in range(1, 3001):
    print(f"step {step}/3000 loss=0.5", flush=True)
    time.sleep(0.2)
"""


def add_instance(fake: FakeVast, sshd: SshdServer, **overrides: Any) -> None:
    """The run's instance on the fake API, reachable over SSH at the sshd fixture."""
    fields: dict[str, Any] = {"ssh_host": sshd.host, "ssh_port": sshd.port, "dph_total": DPH}
    fields.update(overrides)
    fake.add_instance(INSTANCE, **fields)


def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / RUN


def make_config(
    tmp_path: Path, sshd: SshdServer, fake: FakeVast, *, long: bool = True, **run_fields: Any
) -> Config:
    """A run with an instance id and no host: SSH must come from the instance."""
    trainer = tmp_path / "train.py"
    trainer.write_text(LONG_TRAINER if long else QUICK_TRAINER)
    run = RunConfig(
        name=RUN,
        instance_id=INSTANCE,
        user=sshd.user,
        key=sshd.key_path,
        run_dir=str(run_dir(tmp_path)),
        command=f"{sys.executable} {trainer}",
        env={"PYTHONUNBUFFERED": "1"},
        backoff_s=0.1,
        heartbeat_s=0.3,
        max_attempts=1,
        **run_fields,
    )
    return Config.model_validate(
        {
            "watcher": WatcherConfig(
                state_dir=tmp_path / "state",
                python=sys.executable,
                remote_root=str(tmp_path / "remote"),
            ),
            "cadence": CadenceConfig(scale=1 / 60),
            # The tests move the clock by hours: a stale heartbeat must not start a stall kill.
            "thresholds": ThresholdsConfig(heartbeat_stale="2d", stall_after="2d"),
            "vast": {"api_base": fake.base_url},
            "runs": [run],
        }
    )


def vast_provider(fake: FakeVast, sleep: RecordingSleep, *, max_retries: int = 4) -> VastProvider:
    return VastProvider(
        fake.base_url, SecretStr(fake.api_key), sleep=sleep, max_retries=max_retries
    )


@dataclass
class Transports:
    """`transport_for` over one pool, as the engine builds it: the target from the record."""

    config: Config
    state_dir: Path
    pool: SshPool = field(init=False)

    def __post_init__(self) -> None:
        self.pool = SshPool(
            self.state_dir / "known_hosts",
            options=SshOptions(backoff_initial_s=0.05, backoff_max_s=0.2),
        )

    def __call__(self, record: RunRecord) -> SshTransport:
        assert record.ssh_host is not None and record.ssh_port is not None
        key = self.config.run(record.name).key
        target = SshTarget(record.ssh_host, record.ssh_port, record.ssh_user or "root", key)
        return SshTransport(self.pool, target, SshOptions(backoff_initial_s=0.05))


def read_state(tmp_path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads((run_dir(tmp_path) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return doc


async def wait_for_state(
    tmp_path: Path, reached: Callable[[dict[str, Any]], bool], what: str, polls: int
) -> dict[str, Any]:
    """Until the supervisor's state.json is `reached` (bounded; not a timing)."""
    for _ in range(polls):
        state = read_state(tmp_path)
        if state is not None and reached(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"state.json never reached {what}: {read_state(tmp_path)}")


async def wait_for_status(tmp_path: Path, *statuses: str, polls: int = 300) -> dict[str, Any]:
    return await wait_for_state(
        tmp_path, lambda state: state.get("status") in statuses, f"{statuses}", polls
    )


async def wait_for_step(tmp_path: Path, polls: int = 900) -> dict[str, Any]:
    """Until the supervisor has read a step from the trainer's log."""
    return await wait_for_state(tmp_path, lambda state: bool(state.get("step")), "a step", polls)


def stop_supervisor(config: Config, tmp_path: Path) -> None:
    """The supervisor is a daemon on this machine that outlives sshd: stop it directly."""
    if not (run_dir(tmp_path) / "state.json").exists():
        return
    argv = supervisor_argv(
        sys.executable,
        config.watcher.remote_root,
        ["ctl", "--run-dir", str(run_dir(tmp_path)), "stop"],
    )
    subprocess.run(argv, capture_output=True, timeout=30, check=False)  # noqa: S603
