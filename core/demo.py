"""`sleepwatch demo`: the product's whole promise on this machine in under a minute, with no
accounts: a real supervisor supervising a bundled trainer, the watcher on the local transport
with a fast cadence, SQLite in a temporary folder, the console notifier.

Called by the CLI (`sleepwatch demo`, core/cli.py); the engine is built by the composition
root (core/root.py: build_app) from the demo's own local parts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import shlex
import sys
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from core.config import (
    CadenceConfig,
    CollectConfig,
    Config,
    KnobConfig,
    RunConfig,
    ThresholdsConfig,
    WatcherConfig,
)
from core.console import ConsoleNotifier
from core.launch import launch, plan_launch
from core.local import LocalTransport
from core.models import RunRecord
from core.ports import Notifier
from core.providers.registry import Providers
from core.root import App, build_app
from core.runtime import utc_now
from core.store import Store
from core.vocab import RunStatus

TRAINER = Path(__file__).resolve().parent / "demo_assets" / "trainer.py"
SCENARIOS = ("oom", "crash", "stall", "missing-module", "healthy")
DEMO_TIMEOUT_S = 80.0
DEMO_DEP = "sleepwatch_demo_dep"


def demo_config(scenario: str, workdir: Path) -> Config:
    run_dir = workdir / "runs" / f"demo-{scenario}"
    python = shlex.quote(sys.executable)
    command = (
        f"{python} {shlex.quote(str(TRAINER))} --scenario {scenario} "
        f"--eval-batch-size {{eval_batch_size}} --marker-dir {shlex.quote(str(run_dir))}"
    )
    env: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
    supervisor: dict[str, object] = {}
    if scenario == "missing-module":
        wheels, target = workdir / "wheels", workdir / "site"
        build_demo_wheel(wheels)
        env["PYTHONPATH"] = str(target)
        supervisor["pip"] = {
            "command": [sys.executable, "-m", "pip"],
            "install_args": ["--no-index", "--find-links", str(wheels), "--target", str(target)],
            # Only a module whose distribution is known is ever installed.
            "allow": {DEMO_DEP: "sleepwatch-demo-dep"},
        }
    run = RunConfig(
        name=f"demo-{scenario}",
        local=True,
        run_dir=str(run_dir),
        command=command,
        env=env,
        max_attempts=3,
        backoff_s=0.5,
        heartbeat_s=0.5,
        knobs={"eval_batch_size": KnobConfig(value=64, min=8)},
        supervisor=supervisor,
        dph_total=2.10,
        # failed runs collect too: the logs and the last checkpoint are what one debugs with
        collect=CollectConfig(paths=["checkpoint-*", "metrics.json", "attempts"]),
    )
    return Config(
        watcher=WatcherConfig(
            state_dir=workdir / "state", python=sys.executable, wait_timeout=30.0
        ),
        cadence=CadenceConfig(scale=1 / 60),  # 1m, 2m, 4m, 8m, 30m → 1s, 2s, 4s, 8s, 30s
        thresholds=ThresholdsConfig(
            heartbeat_stale=5.0, stall_after=3.0, soft_hold=30.0, unreachable_checks=2
        ),
        runs=[run],
    )


def build_demo_wheel(folder: Path) -> Path:
    """A one-module wheel written directly (a wheel is a zip with a RECORD), so the
    missing-module scenario needs no network and no build backend."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{DEMO_DEP}-1.0.dist-info"
    files = {
        f"{DEMO_DEP}/__init__.py": b'VERSION = "1.0"\n',
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: sleepwatch-demo-dep\n"
        b"Version: 1.0\n",
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: sleepwatch-demo\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    path = folder / f"{DEMO_DEP}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


async def run_demo(
    scenario: str,
    *,
    out: TextIO | None = None,
    workdir: Path | None = None,
    notifier: Notifier | None = None,
) -> int:
    """Run one scenario to its end. Exit code 0 when the run is done, 1 otherwise. The messages
    go to `out` unless another `notifier` is given (tests send them to the fake Bot API)."""
    stream = out or sys.stdout
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sleepwatch-demo-"))
    config = demo_config(scenario, workdir)
    run = config.runs[0]

    def emit(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    emit(f"sleepwatch demo · scenario {scenario} · store and run dir in {workdir}")
    emit("status line: ts status attempt step gpu mem fix run   (one per check)")
    local = LocalTransport()
    async with AsyncExitStack() as stack:
        store = await Store.open(config.watcher.resolved_state_dir() / "sleepwatch.sqlite3")
        stack.push_async_callback(store.close)
        app = build_app(
            config,
            store,
            # emit() already printed the status lines
            notifier or ConsoleNotifier(stream, status_lines=False),
            Providers({}),  # a local run: no cloud instance, no provider
            lambda record: local,
            utc_now,
            emit=emit,
            min_gap_s=0.0,
            hold_s=0.0,
        )
        stack.push_async_callback(app.service.stop)
        plan = await plan_launch(run, config, None, utc_now)
        record = await launch(plan, run, config, store, local, None)
        return await _to_the_end(app, record, emit)


async def _to_the_end(app: App, record: RunRecord, emit: Callable[[str], None]) -> int:
    """Watch the launched run until it ends (at most DEMO_TIMEOUT_S), then send what is queued.
    0 when the run is done, 1 otherwise."""
    service, name = app.service, record.name
    await service.start()
    try:
        await asyncio.wait_for(service.finished[name].wait(), DEMO_TIMEOUT_S)
    except TimeoutError:
        emit(f"demo: {name} did not finish within {DEMO_TIMEOUT_S:.0f}s; stopping it")
        with contextlib.suppress(Exception):
            await app.ctl(record, "stop")
        return 1
    await service.drain_outbox()
    final = await app.store.get_run(name)
    return 0 if final is not None and final.status == RunStatus.DONE else 1
