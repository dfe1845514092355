"""The bounded fix catalogue: each fix is planned (pure) as argument lists and paths, then run.

Each kind is applied at most once per run, except `oom`, which may keep halving its knobs
down to their floors. Nothing here is ever a shell string, and a pip name is validated first.

Planned and applied by supervisor.runner between a failed attempt and the next.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set

from .classify import Failure
from .config import Config
from .pipnames import is_valid_dist


@dataclass
class FixPlan:
    kind: str
    action: str
    commands: List[List[str]] = field(default_factory=list)
    delete: List[str] = field(default_factory=list)
    knobs: Dict[str, float] = field(default_factory=dict)


def plan_fix(
    failure: Failure,
    config: Config,
    used: Set[str],
    knobs: Dict[str, float],
    is_root: bool,
    has_apt: bool,
) -> Optional[FixPlan]:
    """The fix for this failure, or None when none is allowed or none is left."""
    kind = failure.kind
    if kind not in config.fixes or (kind in used and kind != "oom"):
        return None
    if kind == "missing_module":
        return _pip_plan(failure, config)
    if kind == "missing_build_tool":
        return _build_tool_plan(failure, config, is_root, has_apt)
    if kind == "disk_full":
        return _disk_plan(config)
    if kind == "oom":
        return _oom_plan(config, knobs)
    return None


def _pip_install(config: Config, dist: str) -> List[str]:
    return [*config.pip.command, "install", *config.pip.install_args, dist]


def _pip_plan(failure: Failure, config: Config) -> Optional[FixPlan]:
    dist = failure.dist
    if not dist or not is_valid_dist(dist):
        return None
    return FixPlan("missing_module", "pip install %s" % dist, [_pip_install(config, dist)])


def _build_tool_plan(
    failure: Failure, config: Config, is_root: bool, has_apt: bool
) -> Optional[FixPlan]:
    commands, steps = [], []
    if is_root and has_apt:
        commands.append(["apt-get", "update"])
        commands.append(["apt-get", "install", "-y", "build-essential"])
        steps.append("apt-get install build-essential")
    # ninja and cmake come as wheels from PyPI: no root needed.
    for name, needed in (("ninja", failure.needs_ninja), ("cmake", failure.tool == "cmake")):
        if needed:
            commands.append(_pip_install(config, name))
            steps.append("pip install %s" % name)
    if not commands:
        return None
    return FixPlan("missing_build_tool", " && ".join(steps), commands)


def _disk_plan(config: Config) -> FixPlan:
    base = config.run_dir
    delete = old_checkpoints(config.cleanup.checkpoint_glob, config.cleanup.keep_checkpoints, base)
    for pattern in config.cleanup.paths:
        delete.extend(_glob(pattern, base))
    delete = [p for p in dict.fromkeys(delete) if _deletable(p, config)]
    action = "pip cache purge; deleted %d path(s)" % len(delete)
    return FixPlan("disk_full", action, [[*config.pip.command, "cache", "purge"]], delete)


def _oom_plan(config: Config, knobs: Dict[str, float]) -> Optional[FixPlan]:
    stepped = {}
    for name, knob in config.knobs.items():
        current = knobs.get(name, knob.value)
        lower = max(knob.min, current * knob.factor)
        if float(knob.value).is_integer():
            lower = max(knob.min, float(int(lower)))
        if lower < current:
            stepped[name] = lower
    if not stepped:
        return None
    action = ", ".join(
        "%s %s -> %s" % (n, _num(knobs.get(n, config.knobs[n].value)), _num(v))
        for n, v in stepped.items()
    )
    return FixPlan("oom", action, knobs=stepped)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _glob(pattern: str, base: str) -> List[str]:
    full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
    return sorted(glob.glob(full))


def old_checkpoints(pattern: Optional[str], keep: int, base: str) -> List[str]:
    """Checkpoints beyond the newest `keep`, oldest first."""
    if not pattern:
        return []
    found = sorted(_glob(pattern, base), key=lambda p: os.lstat(p).st_mtime)
    return found[: max(0, len(found) - keep)]


def _deletable(path: str, config: Config) -> bool:
    real = os.path.abspath(path)
    protected = {
        "/",
        os.path.expanduser("~"),
        os.path.abspath(config.run_dir),
        os.path.abspath(config.workdir),
    }
    return real not in protected and os.path.basename(real) not in ("attempts", "state.json")


def apply_fix(
    plan: FixPlan,
    env: Dict[str, str],
    cwd: str,
    log: Callable[[str], None],
    timeout_s: float = 1800,
) -> bool:
    """Run the plan; True when every command exited 0 and every path was removed."""
    ok = True
    for argv in plan.commands:
        log("fix %s: running %s" % (plan.kind, argv))
        try:
            done = subprocess.run(
                argv, env=env, cwd=cwd, capture_output=True, timeout=timeout_s, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log("fix %s: %s failed to run: %s" % (plan.kind, argv[0], exc))
            ok = False
            continue
        output = (done.stdout + done.stderr).decode("utf-8", "replace")[-2000:]
        log("fix %s: exit %d\n%s" % (plan.kind, done.returncode, output))
        ok = ok and done.returncode == 0
    for path in plan.delete:
        ok = _remove(path, log) and ok
    return ok


def _remove(path: str, log: Callable[[str], None]) -> bool:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except OSError as exc:
        log("fix disk_full: could not remove %s: %s" % (path, exc))
        return False
    log("fix disk_full: removed %s" % path)
    return True
