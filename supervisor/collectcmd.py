"""The run's collect command (the user's own `huggingface-cli upload ...`), run by the
supervisor after the trainer ended (runner.py) and before the watcher may tear down.

The command is an argument list from RUN.json, written at launch from the user's config: it is
never built from log or chat text and never goes through a shell. It runs like an attempt:
behind the guard in its own process group, output to RUN_DIR/collect.log, bounded by its
timeout; state.json's `collect` says `pending`, `running`, then `ok` or `failed` with the exit
code and the log's last lines, which the watcher reads (core/collect.py).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional, Protocol

from .config import Config
from .logread import tail_lines
from .state import RunState
from .timeutil import iso_z
from .trainer import Trainer, trainer_env

LOG_NAME = "collect.log"
EXCERPT_LINES = 20
EXCERPT_CHARS = 2000


class CollectHost(Protocol):
    """What the command needs from the supervisor that runs it (supervisor.runner)."""

    config: Config
    state: RunState
    log: Callable[[str], None]
    clock: Callable[[], Any]

    def write_state(self) -> None: ...
    def tick(self) -> None: ...
    def take_stop_request(self) -> bool: ...


def pending() -> Dict[str, Any]:
    return {"status": "pending"}


def not_run(sup: CollectHost, why: str) -> None:
    sup.state.collect = {"status": "failed", "exit_code": None, "excerpt": "not run: " + why}
    sup.write_state()


def run_collect_command(sup: CollectHost) -> None:
    cfg, state = sup.config, sup.state
    spec = cfg.collect
    if spec is None:
        return
    started = sup.clock()
    state.collect = {"status": "running", "started_at": iso_z(started)}
    sup.write_state()
    log_path = os.path.join(cfg.run_dir, LOG_NAME)
    env = trainer_env(os.environ, cfg.env, state.knobs, state.attempt, cfg.run_dir)
    sup.log("collect: starting %r" % (spec.command,))
    code: Optional[int] = None
    timed_out = False
    try:
        proc = Trainer(spec.command, env, cfg.workdir, log_path, cfg.kill_grace_s)
    except OSError as exc:
        sup.log("collect: cannot start: %s" % exc)
    else:
        deadline = time.monotonic() + spec.timeout_s
        while True:
            code = proc.poll()
            if code is not None:
                break
            if not timed_out and (time.monotonic() >= deadline or sup.take_stop_request()):
                timed_out = time.monotonic() >= deadline
                proc.terminate()
            sup.tick()
        proc.finish()
    ok = code == 0 and not timed_out
    excerpt = "\n".join(tail_lines(log_path, EXCERPT_LINES))[-EXCERPT_CHARS:]
    state.collect = {
        "status": "ok" if ok else "failed",
        "exit_code": code,
        "timed_out": timed_out,
        "excerpt": excerpt,
        "started_at": iso_z(started),
        "ended_at": iso_z(sup.clock()),
    }
    sup.log("collect: %s (exit %s%s)" % (state.collect["status"], code, ", timed out" * timed_out))
    sup.write_state()
