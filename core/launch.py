"""Launch: resolve the host (from the cloud instance when only its id is given), run the gate,
upload the `supervisor/` package, write RUN.json, `supervisor start`, register the run.

Called by the CLI (`sleepwatch launch`, `sleepwatch gate`: core/cli.py) and by core/demo.py; the
run it registers in the store is then watched by core.service.
"""

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

from core.config import Config, RunConfig, StoredSettings
from core.errors import ProtocolError, ProviderError, SleepwatchError
from core.gate import GateReport, GateSpec, run_gate
from core.memory import Memory
from core.models import InstanceInfo, RunRecord
from core.ports import Clock, Provider, Transport
from core.run_settings import resolve_run
from core.store import Store
from core.supervisor_client import client_for
from core.teardown import wait_until_ready

log = logging.getLogger(__name__)
SUPERVISOR_PACKAGE = Path(__file__).resolve().parent.parent / "supervisor"
START_TIMEOUT_S = 60.0
# The supervisor's own modules, and nothing else from the folder they sit in: an installed
# sleepwatch may share site-packages/supervisor/ with another distribution of that name
# (supervisord). Kept here, not in supervisor/__init__.py, which that one would overwrite.
# tests/core/test_supervisor_client.py checks it equals the package's .py files.
SUPERVISOR_MODULES = (
    "__init__.py",
    "__main__.py",
    "attempt.py",
    "classify.py",
    "collectcmd.py",
    "config.py",
    "configend.py",
    "configread.py",
    "control.py",
    "daemon.py",
    "deadman.py",
    "earlystop.py",
    "failctx.py",
    "fixes.py",
    "fsutil.py",
    "gpu.py",
    "gpurecent.py",
    "instanceapi.py",
    "guard.py",
    "logread.py",
    "manifest.py",
    "metrics.py",
    "patterns.py",
    "pipnames.py",
    "probe.py",
    "proctree.py",
    "progress.py",
    "runner.py",
    "session.py",
    "session_cmds.py",
    "slog.py",
    "state.py",
    "statefile.py",
    "tick.py",
    "timeutil.py",
    "trainer.py",
    "verdict.py",
    "waiter.py",
)
_OURS = "ANSWER_MARK"  # a text only sleepwatch's supervisor/__init__.py holds


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
        doc["fixes"] = [fix.value for fix in run.fixes]
    if run.collect is not None and run.collect.to == "command":
        doc["collect"] = {"command": list(run.collect.command), "timeout_s": run.collect_timeout}
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
            why = f"no {run.provider} provider to read it"
            raise LaunchRefused(f"{run.name}: instance_id set but {why}")
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
        provider=run.provider,
        ssh_host=host,
        ssh_port=port,
        ssh_user=run.user,
        deadline_at=now + timedelta(hours=run.max_hours) if run.max_hours else None,
        dph_total=(instance.dph_total if instance else None) or run.dph_total,
        max_attempts=run.max_attempts,
        memory=Memory(launched_at=now).to_json(),
        settings=StoredSettings.of(resolve_run(config, run)).to_text(),
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


def extra_uploads() -> list[tuple[Path, str]]:
    """Files uploaded beside the package: (local file, path relative to the remote root)."""
    nvml = pynvml_source()
    # beside the package, on the supervisor's sys.path: NVML first, nvidia-smi as fallback
    return [(nvml, "pynvml.py")] if nvml is not None else []


def supervisor_uploads(
    root: str,
    package: Path = SUPERVISOR_PACKAGE,
    extra: list[tuple[Path, str]] | None = None,
) -> list[tuple[Path, str]]:
    """(local file, remote path) of every file launch uploads under the remote `root`."""
    init = package / "__init__.py"
    try:
        ours = _OURS in init.read_text(encoding="utf-8")
    except OSError as exc:
        raise LaunchRefused(f"cannot read the supervisor package at {package}: {exc}") from exc
    if not ours:
        raise LaunchRefused(f"{init} is not sleepwatch's supervisor (another `supervisor`?)")
    files = [(package / name, f"{root}/supervisor/{name}") for name in SUPERVISOR_MODULES]
    extra = extra_uploads() if extra is None else extra
    return files + [(local, f"{root}/{rel}") for local, rel in extra]


async def _start_supervisor(
    plan: LaunchPlan, run: RunConfig, config: Config, transport: Transport
) -> None:
    client = client_for(config, run.name, transport)
    await transport.put_files(supervisor_uploads(client.root))
    config_path = f"{run.run_dir}/RUN.json"
    await transport.put_bytes(json.dumps(run_json(run), indent=2).encode(), config_path)
    try:
        answer = await client.start(config_path, timeout_s=START_TIMEOUT_S)
    except ProtocolError as exc:
        raise LaunchRefused(f"supervisor start failed: {exc}") from exc
    if not answer.ok:
        raise LaunchRefused(f"supervisor start failed: {answer.message}")
