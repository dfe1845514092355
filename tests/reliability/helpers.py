"""Shared pieces of the fault-injection tests: a trainer that crashes once, a config file writer
for the real `sleepwatch` CLI, a wrapper python that misbehaves on `probe`, polling helpers."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import CadenceConfig, Config, RunConfig, ThresholdsConfig, WatcherConfig
from core.console import ConsoleNotifier
from core.launch import launch, plan_launch
from core.local import LocalTransport
from core.models import RunRecord
from core.ports import Notifier
from core.runtime import utc_now
from core.service import Service
from core.store import Store

if TYPE_CHECKING:
    from tests.fixtures.fake_telegram import FakeTelegram
    from tests.fixtures.fake_vast import FakeVast

RUN = "llama-ft"
INSTANCE = "4242"
CHAT_ID = 5150

# Crashes at step 5 of its first attempt (a marker file remembers it), then runs to the end.
CRASH_ONCE = """
import os, sys, time
marker = os.path.join(sys.argv[1], "crashed-once")
steps, step_s = int(sys.argv[2]), float(sys.argv[3])
with open(os.path.join(sys.argv[1], "trainer-%s.pid" % os.environ["SLEEPWATCH_ATTEMPT"]), "w") as f:
    f.write(str(os.getpid()))
for step in range(1, steps + 1):
    time.sleep(step_s)
    sys.stdout.write(f"\\rtrain: {step}/{steps} [00:01<00:01, 10.0it/s]")
    sys.stdout.flush()
    if step == 5 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
print("\\ndone", flush=True)
"""

# A healthy trainer that prints `step N/M` every `step_s` seconds: argv is steps, step_s.
STEP_TRAINER = """
import sys, time
steps, step_s = int(sys.argv[1]), float(sys.argv[2])
for step in range(1, steps + 1):
    print(f"step {step}/{steps} loss=0.5", flush=True)
    time.sleep(step_s)
"""

# STEP_TRAINER that first waits (printing, so it is never silent) until the test creates the
# gate file: a run that cannot end before the test has seen what it waits for, however slowly a
# loaded machine starts `serve`.
GATED_TRAINER = """
import os, sys, time
steps, step_s, gate = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
while not os.path.exists(gate):
    print("loading data", flush=True)
    time.sleep(0.2)
for step in range(1, steps + 1):
    print(f"step {step}/{steps} loss=0.5", flush=True)
    time.sleep(step_s)
"""

# `[watcher] python` for the probe faults: behaves as python unless a mode file says otherwise.
# "hang": a probe that never answers. "reset": the probe kills its own sshd session process
# mid-answer (the connection drops), once.
PROBE_WRAPPER = """#!{python}
import os, signal, sys, time
mode_file = {mode_file!r}
args = sys.argv[1:]
is_probe = "probe" in args[:6]  # python -I -c BOOT ROOT --framed probe ...
mode = open(mode_file).read().strip() if os.path.exists(mode_file) else ""
if is_probe and mode == "hang":
    time.sleep(3600)
if is_probe and mode == "reset":
    os.unlink(mode_file)
    sys.stdout.write('{{"probe": 1, "at": "2026-')
    sys.stdout.flush()
    pid = os.getppid()
    while pid > 1:  # the nearest sshd ancestor: this connection's session process
        if open("/proc/%d/comm" % pid).read().startswith("sshd"):
            os.kill(pid, signal.SIGKILL)
            break
        pid = int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[1])
    time.sleep(5)
os.execv({python!r}, [{python!r}, *args])
"""


def write_trainer(tmp_path: Path) -> Path:
    trainer = tmp_path / "train.py"
    trainer.write_text(CRASH_ONCE)
    return trainer


def trainer_command(trainer: Path, run_dir: Path, steps: int, step_s: float) -> str:
    return f"{sys.executable} {trainer} {run_dir} {steps} {step_s}"


def write_probe_wrapper(tmp_path: Path) -> tuple[Path, Path]:
    """(wrapper executable, mode file): write "hang" or "reset" to the mode file to arm it."""
    mode_file = tmp_path / "probe-mode"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(PROBE_WRAPPER.format(python=sys.executable, mode_file=str(mode_file)))
    wrapper.chmod(0o755)
    return wrapper, mode_file


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def write_config(
    path: Path, sections: Mapping[str, Mapping[str, Any]], runs: list[dict[str, Any]]
) -> Path:
    lines: list[str] = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in keys.items())
        lines.append("")
    for run in runs:
        lines.append("[[runs]]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in run.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


# Every ceiling below is a hang guard, not a speed claim: a loaded CI machine (four xdist workers
# on two cores) starts `serve` several times slower than a quiet one (seen: > 60 s to its first
# Bot API call), so each is stretched by this factor. A passing test is never slowed by it.
HANG_GUARD_SLACK = 3.0


async def wait_for(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout_s: float,
    *,
    every_s: float = 0.1,
    what: str = "condition",
) -> None:
    """Poll `condition` (sync or async) until true; fail the test after `timeout_s` (stretched
    by HANG_GUARD_SLACK)."""
    loop = asyncio.get_running_loop()
    timeout_s *= HANG_GUARD_SLACK
    give_up_at = loop.time() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > give_up_at:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(every_s)


def process_gone(pid: int) -> bool:
    """True when `pid` has exited (a zombie nobody reaped counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def db_rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the store from outside the service (WAL lets a reader in while it writes)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def ended_and_told(db: Path, run: str) -> bool:
    """The run is over and every message is sent, read in ONE statement (one snapshot): read
    apart, the count could predate the terminal message its ending queues just before it."""
    if not db.exists():
        return False
    sql = (
        "SELECT live, (SELECT count(*) FROM outbox WHERE sent_at IS NULL) FROM runs WHERE name = ?"
    )
    rows = db_rows(db, sql, (run,))
    return bool(rows) and rows[0] == (0, 0)


def local_config(
    tmp_path: Path,
    command: str,
    *,
    thresholds: dict[str, Any] | None = None,
    cadence: dict[str, Any] | None = None,
    **run: Any,
) -> Config:
    """A local run (`local = true`: the supervisor runs on this machine) with fast cadence."""
    return Config(
        watcher=WatcherConfig(
            state_dir=tmp_path / "state", python=sys.executable, wait_timeout=5.0
        ),
        cadence=CadenceConfig(**(cadence or {"scale": 1 / 60})),
        thresholds=ThresholdsConfig(
            **(
                thresholds
                or {
                    "heartbeat_stale": 5,
                    "stall_after": 600,
                    "unreachable_checks": 2,
                    "unreachable_after": 0,  # these tests count failed checks, not minutes
                }
            )
        ),
        runs=[
            RunConfig(
                name=RUN,
                local=True,
                run_dir=str(tmp_path / "runs" / RUN),
                command=command,
                env={"PYTHONUNBUFFERED": "1"},
                backoff_s=0.3,
                heartbeat_s=0.3,
                max_attempts=3,
                **run,
            )
        ],
    )


class LocalHarness:
    """The serve composition for a local run: real store, real supervisor, local transport."""

    def __init__(self, config: Config, notifier: Notifier | None = None) -> None:
        self.config = config
        self.transport = LocalTransport()
        self.out = io.StringIO()
        self.notifier = notifier or ConsoleNotifier(self.out)
        self.lines: list[str] = []
        self.db = config.watcher.resolved_state_dir() / "sleepwatch.sqlite3"

    def service(self, store: Store, **kwargs: Any) -> Service:
        return Service(
            self.config,
            store,
            self.notifier,
            None,
            lambda record: self.transport,
            utc_now,
            emit=self.lines.append,
            **{"min_gap_s": 0.0, "hold_s": 0.0, **kwargs},
        )

    async def launch(self, store: Store) -> RunRecord:
        run = self.config.runs[0]
        plan = await plan_launch(run, self.config, None, utc_now)
        return await launch(plan, run, self.config, store, self.transport, None)

    def kinds(self) -> list[str]:
        text = self.out.getvalue()
        return [line.split("]")[0][1:] for line in text.splitlines() if line.startswith("[")]


def read_state(run_dir: str | Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((Path(run_dir) / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc


class Cli:
    def __init__(self, config: Path, tg: FakeTelegram, vast: FakeVast, logs: Path) -> None:
        self.config = config
        self.env = {
            **os.environ,
            "SLEEPWATCH_TELEGRAM_TOKEN": tg.token,
            "VAST_API_KEY": vast.api_key,
            "PYTHONUNBUFFERED": "1",
        }
        self.logs = logs
        self.started = 0

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        self.started += 1
        out = (self.logs / f"cli-{self.started:02d}.log").open("wb")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.app",
                "--config",
                str(self.config),
                *args,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            out.close()

    def log_text(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("cli-*.log"))
        )

    async def run(self, *args: str, timeout_s: float = 60.0) -> tuple[int, str]:
        """A one-shot command (launch, teardown, runs): its exit status and output."""
        process = await self.start(*args)
        path = self.logs / f"cli-{self.started:02d}.log"
        async with asyncio.timeout(timeout_s * HANG_GUARD_SLACK):
            status = await process.wait()
        return status, path.read_text(errors="replace")
