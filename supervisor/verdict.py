"""How an attempt ended, in the supervisor's words: an outcome for exit 0, else a Failure
read from the log and from the machine at that moment (free disk, the kernel's OOM killer,
whether a missing module can be trusted to pip).

Called by supervisor.runner after each attempt.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from typing import List, Optional

from . import failctx
from .classify import Failure, classify, module_is_users_own, signal_of
from .config import Config
from .earlystop import trainer_stopped_early
from .pipnames import close_match, dist_for_module, requirement_names

# Every outcome the supervisor can write (state.json `outcome`); core's Outcome matches it.
OUTCOMES = (
    "completed",
    "early_stopped",
    "ended_short",
    "budget_exhausted",
    "unfixable",
    "killed",
)


def clean_exit_outcome(tail: List[str], step: Optional[int], total: Optional[int]) -> str:
    """Exit 0: completed, or stopped early on purpose (the trainer says so), or ended below
    its own total with nothing that says why (`ended_short`, which the watcher alerts)."""
    if trainer_stopped_early(tail):
        return "early_stopped"
    if step is not None and total and step < total:
        return "ended_short"
    return "completed"


def classify_attempt(
    cfg: Config,
    exit_code: Optional[int],
    tail: List[str],
    killed: bool,
    attempt_started: float,
) -> Failure:
    readings = failctx.disk_readings(disk_paths(cfg) + failctx.paths_in(tail))
    low = failctx.low_disk(readings, cfg.min_free_disk_mb)
    failure = classify(
        exit_code,
        tail,
        disk_free_mb=0.0 if low else None,
        min_free_disk_mb=1.0 if low else 0.0,
        killed=killed,
    )
    if failure.kind == "disk_full" or low:
        failure = failure.with_note(failctx.disk_note(readings, low))
    if failure.kind == "host_oom" and signal_of(exit_code) == signal.SIGKILL:
        failure = failure.with_note(failctx.sigkill_note(failctx.kernel_oom_lines(attempt_started)))
    if failure.kind == "missing_module" and failure.module:
        failure = trusted_module(cfg, failure, failure.module)
    return failure


def trusted_module(cfg: Config, failure: Failure, module: str) -> Failure:
    """The failure with `dist` set when pip may install it, else with a note saying why not."""
    dirs = [cfg.workdir, cfg.run_dir]
    if module_is_users_own(module, dirs):
        return replace(failure, dist=None).with_note(
            "module %r is part of your own code (found in the working directory): pip cannot "
            "provide it; fix the import or the code layout" % module
        )
    dist = failure.dist or dist_for_module(module, cfg.pip.allow, requirement_names(dirs))
    if dist:
        return replace(failure, dist=dist)
    hint = close_match(module, cfg.pip.allow)
    return failure.with_note(
        "module %r has no distribution sleepwatch can trust (not in its built-in map, your "
        "requirements.txt/constraints.txt or RUN.json pip.allow): not installing it%s"
        % (module, "; did you mean %r?" % hint if hint else "")
    )


def disk_paths(cfg: Config) -> List[str]:
    """Where a trainer writes: the run dir, its working dir, and the checkpoint/cleanup dirs."""
    paths = [cfg.run_dir, cfg.workdir]
    for pattern in [cfg.cleanup.checkpoint_glob or ""] + list(cfg.cleanup.paths):
        base = pattern.split("*", 1)[0]
        if base:
            paths.append(os.path.dirname(os.path.join(cfg.run_dir, base)) or cfg.run_dir)
    return paths
