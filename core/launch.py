"""Launch: resolve the host (from the cloud instance when only its id is given), run the gate,
upload the `supervisor/` package, write RUN.json, `supervisor start`, register the run."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.config import Config, RunConfig, RunSettings
from core.errors import ProviderError, SleepwatchError
from core.gate import GateReport, GateSpec, run_gate
from core.memory import Memory
from core.models import InstanceInfo, RunRecord
from core.ports import Clock, Provider, Transport
from core.store import Store
from core.teardown import wait_until_ready

log = logging.getLogger(__name__)
SUPERVISOR_PACKAGE = Path(__file__).resolve().parent.parent / "supervisor"
START_TIMEOUT_S = 60.0


class LaunchRefused(SleepwatchError):
    permanent = True


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    record: RunRecord
    gate: GateReport | None
    instance: InstanceInfo | None


def run_json(run: RunConfig) -> dict[str, Any]:
    """The supervisor's RUN.json: the contract's keys, then the run's extra supervisor keys."""
    doc: dict[str, Any] = {
        "run": run.name,
        "run_dir": run.run_dir,
        "command": run.command,
        "env": dict(run.env),
        "max_attempts": run.max_attempts,
        "backoff_s": run.backoff_s,
        "heartbeat_s": run.heartbeat_s,
        "knobs": {k: knob.model_dump() for k, knob in run.knobs.items()},
    }
    if run.fixes is not None:
        doc["fixes"] = list(run.fixes)
    doc.update(run.supervisor)
    return doc


def gate_spec(run: RunConfig) -> GateSpec:
    gate = run.gate
    assert gate is not None
    return GateSpec(**gate.model_dump())


async def plan_launch(
    run: RunConfig,
    config: Config,
    provider: Provider | None,
    clock: Clock,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> LaunchPlan:
    """Read the instance (waiting while it loads), run the gate, build the run's record."""
    now = clock()
    instance: InstanceInfo | None = None
    report: GateReport | None = None
    host, port = run.host, run.port
    if run.instance_id is not None:
        if provider is None:
            raise LaunchRefused(f"{run.name}: instance_id set but no VAST_API_KEY to read it")
        instance = await wait_until_ready(provider, run.instance_id, sleep=sleep)
        if host is None:
            host, port = instance.ssh_host, instance.ssh_port or port
        if run.gate is not None:
            report = run_gate(gate_spec(run), instance)
    if host is None and not run.local:
        raise LaunchRefused(f"{run.name}: no SSH host known (set host, or instance_id)")
    record = RunRecord(
        name=run.name,
        run_dir=run.run_dir,
        launched_at=now,
        instance_id=run.instance_id,
        ssh_host=host,
        ssh_port=port,
        ssh_user=run.user,
        deadline_at=now + timedelta(hours=run.max_hours) if run.max_hours else None,
        dph_total=(instance.dph_total if instance else None) or run.dph_total,
        max_attempts=run.max_attempts,
        memory=Memory(launched_at=now).to_json(),
        settings=RunSettings.of(config.resolved_run(run)).to_text(),
    )
    return LaunchPlan(record, report, instance)


async def launch(
    plan: LaunchPlan,
    run: RunConfig,
    config: Config,
    store: Store,
    transport: Transport,
    provider: Provider | None,
    *,
    force: bool = False,
    replace_live: bool = False,
) -> RunRecord:
    """`force` launches past a failed gate; `replace_live` relaunches a run still watched
    (refused if it runs on another instance: that one would bill with nobody watching)."""
    if plan.gate is not None and not plan.gate.passed and not force:
        failed = ", ".join(plan.gate.failed_checks)
        raise LaunchRefused(f"{run.name}: the gate failed ({failed}); --force to launch anyway")
    existing = await store.get_run(run.name)
    if existing is not None and existing.live:
        if not replace_live:
            raise LaunchRefused(f"{run.name} is already being watched; --replace to relaunch")
        if existing.instance_id != plan.record.instance_id:
            raise LaunchRefused(
                f"{run.name} is watched on instance {existing.instance_id}: tear it down first"
            )
    if existing is not None:
        await store.reset_run(run.name, plan.record.launched_at)  # a fresh run, fresh claims
    await store.upsert_run(plan.record)  # known before it starts: a crash now loses nothing
    try:
        await _start_supervisor(plan, run, config, transport)
    except (SleepwatchError, OSError) as exc:
        await store.save_run(replace(plan.record, live=False, status="launch_failed"))
        raise LaunchRefused(f"{run.name}: launch failed: {exc}") from exc
    if provider is not None and run.instance_id is not None:
        try:
            await provider.label(run.instance_id, run.name)
        except ProviderError as exc:  # the run is running: a missing label is no reason to fail
            log.warning("%s: could not label instance %s: %s", run.name, run.instance_id, exc)
    return plan.record


def pynvml_source() -> Path | None:
    """nvidia-ml-py's `pynvml.py` (one pure-Python file) from the watcher's environment, so
    the supervisor reads GPUs through NVML; None when it is not installed (nvidia-smi then)."""
    spec = importlib.util.find_spec("pynvml")
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith("pynvml.py") else None


async def _start_supervisor(
    plan: LaunchPlan, run: RunConfig, config: Config, transport: Transport
) -> None:
    root = config.remote_root(run.name)
    await transport.put_tree(SUPERVISOR_PACKAGE, f"{root}/supervisor")
    nvml = pynvml_source()
    if nvml is not None:  # beside the package, on the supervisor's PYTHONPATH: NVML first
        await transport.put_bytes(nvml.read_bytes(), f"{root}/pynvml.py", mode=0o644)
    config_path = f"{run.run_dir}/RUN.json"
    await transport.put_bytes(json.dumps(run_json(run), indent=2).encode(), config_path)
    argv = config.supervisor_argv(run.name, ["start", "--config", config_path])
    result = await transport.run(argv, timeout_s=START_TIMEOUT_S)
    if result.exit_status != 0:
        detail = (result.stderr or result.stdout).decode("utf-8", "replace").strip()[-500:]
        raise LaunchRefused(f"supervisor start failed: {detail}")
