"""RUN.json: load and validate the supervisor's config. Errors name the offending field.

Called at the supervisor's start by supervisor.__main__ (`start`, `run`); the typed Config it
returns is read by the runner, the fixes, the verdict and the dead-man switch. The per-key
readers (types, bounds, unknown keys) are supervisor.configread; the watcher writes the file
(core.launch.run_json).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .configend import CollectCommand as CollectCommand
from .configend import Deadman as Deadman
from .configend import parse_collect, parse_deadman
from .configread import ConfigError as ConfigError
from .configread import number as _number
from .configread import refuse_unknown as _refuse_unknown
from .configread import regex as _regex
from .configread import section as _section
from .configread import string as _string
from .configread import string_list as _string_list

FIX_KINDS = ("missing_module", "missing_build_tool", "disk_full", "oom")
TOP_KEYS = (
    "run",
    "run_dir",
    "command",
    "env",
    "max_attempts",
    "backoff_s",
    "heartbeat_s",
    "fixes",
    "knobs",
    "cwd",
    "kill_grace_s",
    "pip",
    "cleanup",
    "min_free_disk_mb",
    "progress_regex",
    "early_stop",
    "deadman",
    "collect",
)
_KNOB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DIST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Knob:
    value: float
    min: float
    factor: float = 0.5


@dataclass(frozen=True)
class PipOptions:
    command: List[str] = field(default_factory=lambda: ["python3", "-m", "pip"])
    install_args: List[str] = field(default_factory=list)
    # Import name -> distribution the missing-module fix may install beyond the built-in map.
    allow: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cleanup:
    paths: List[str] = field(default_factory=list)
    checkpoint_glob: Optional[str] = None
    keep_checkpoints: int = 2


@dataclass(frozen=True)
class EarlyStop:
    metric_regex: str
    mode: str = "min"
    min_delta: float = 0.0
    patience: int = 3
    auto_stop_min_steps: int = 0


@dataclass(frozen=True)
class Config:
    run: str
    run_dir: str
    command: str
    env: Dict[str, str] = field(default_factory=dict)
    max_attempts: int = 3
    backoff_s: float = 10.0
    heartbeat_s: float = 15.0
    fixes: List[str] = field(default_factory=lambda: list(FIX_KINDS))
    knobs: Dict[str, Knob] = field(default_factory=dict)
    cwd: Optional[str] = None
    kill_grace_s: float = 10.0
    pip: PipOptions = field(default_factory=PipOptions)
    cleanup: Cleanup = field(default_factory=Cleanup)
    min_free_disk_mb: float = 0.0
    progress_regex: Optional[str] = None
    early_stop: Optional[EarlyStop] = None
    deadman: Deadman = field(default_factory=Deadman)
    collect: Optional[CollectCommand] = None

    @property
    def workdir(self) -> str:
        return self.cwd or self.run_dir


def load_config(path: str) -> Config:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError("(file)", "cannot read %s: %s" % (path, exc.strerror)) from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError("(file)", "%s is not valid JSON (%s)" % (path, exc)) from None
    return parse_config(doc)


def parse_config(doc: Any) -> Config:
    if not isinstance(doc, dict):
        raise ConfigError("(root)", "must be a JSON object")
    _refuse_unknown(doc, TOP_KEYS, "")
    run = _string(doc, "run", required=True)
    if not re.match(r"^[A-Za-z0-9._-]{1,100}$", run):
        raise ConfigError("run", "use letters, digits, '.', '_' or '-' (at most 100)")
    run_dir = _string(doc, "run_dir", required=True)
    if not os.path.isabs(run_dir):
        raise ConfigError("run_dir", "must be an absolute path")
    knobs = _knobs(doc.get("knobs", {}))
    return Config(
        run=run,
        run_dir=run_dir,
        command=_string(doc, "command", required=True),
        env=_env(doc.get("env", {})),
        max_attempts=int(_number(doc, "max_attempts", 3, minimum=1, integer=True)),
        backoff_s=_number(doc, "backoff_s", 10.0, minimum=0),
        heartbeat_s=_number(doc, "heartbeat_s", 15.0, minimum=0.05),
        fixes=_fixes(doc.get("fixes", list(FIX_KINDS))),
        knobs=knobs,
        cwd=_string(doc, "cwd") or None,
        kill_grace_s=_number(doc, "kill_grace_s", 10.0, minimum=0),
        pip=_pip(doc.get("pip", {})),
        cleanup=_cleanup(doc.get("cleanup", {})),
        min_free_disk_mb=_number(doc, "min_free_disk_mb", 0.0, minimum=0),
        progress_regex=_regex(doc, "progress_regex", ""),
        early_stop=_early_stop(doc.get("early_stop")),
        deadman=parse_deadman(doc.get("deadman", {})),
        collect=parse_collect(doc.get("collect")),
    )


def _env(raw: Any) -> Dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError("env", "must be an object of strings")
    for key, value in raw.items():
        if not isinstance(value, str) or not key or "=" in key:
            raise ConfigError("env." + str(key), "must be a string value with a plain name")
    return dict(raw)


def _fixes(raw: Any) -> List[str]:
    fixes = _string_list(raw, "fixes")
    for kind in fixes:
        if kind not in FIX_KINDS:
            raise ConfigError("fixes", "unknown fix %r (known: %s)" % (kind, ", ".join(FIX_KINDS)))
    return fixes


def _knobs(raw: Any) -> Dict[str, Knob]:
    if not isinstance(raw, dict):
        raise ConfigError("knobs", "must be an object")
    knobs = {}
    for name, spec in raw.items():
        where = "knobs.%s" % name
        if not _KNOB_NAME.match(name):
            raise ConfigError(where, "knob names are identifiers")
        spec = _section(spec, where, ("value", "min", "factor"))
        value = _number(spec, "value", 0, minimum=0, where=where + ".")
        if "value" not in spec:
            raise ConfigError(where + ".value", "is required")
        minimum = _number(spec, "min", value, minimum=0, where=where + ".")
        factor = _number(spec, "factor", 0.5, where=where + ".")
        if not 0 < factor < 1:
            raise ConfigError(where + ".factor", "must be between 0 and 1")
        if minimum > value:
            raise ConfigError(where + ".min", "must not exceed value")
        knobs[name] = Knob(value=value, min=minimum, factor=factor)
    return knobs


def _pip(raw: Any) -> PipOptions:
    raw = _section(raw, "pip", ("command", "install_args", "allow"))
    command = _string_list(raw.get("command", ["python3", "-m", "pip"]), "pip.command")
    if not command:
        raise ConfigError("pip.command", "must not be empty")
    install_args = _string_list(raw.get("install_args", []), "pip.install_args")
    return PipOptions(command, install_args, _allow(raw.get("allow", {})))


def _allow(raw: Any) -> Dict[str, str]:
    """`pip.allow`: {"import_name": "distribution"}, or a list of names that are both."""
    if isinstance(raw, list):
        raw = {name: name for name in _string_list(raw, "pip.allow")}
    if not isinstance(raw, dict):
        raise ConfigError("pip.allow", "must be an object of import name -> distribution")
    for module, dist in raw.items():
        if not isinstance(dist, str) or not _MODULE.match(module) or not _DIST.match(dist):
            raise ConfigError(
                "pip.allow." + str(module), "must map an import name to a project name"
            )
    return dict(raw)


def _cleanup(raw: Any) -> Cleanup:
    raw = _section(raw, "cleanup", ("paths", "checkpoint_glob", "keep_checkpoints"))
    paths = _string_list(raw.get("paths", []), "cleanup.paths")
    for pattern in paths:
        if pattern.strip() in ("", "/", "*", "/*", "~", "."):
            raise ConfigError("cleanup.paths", "refusing the over-broad pattern %r" % pattern)
    keep = _number(raw, "keep_checkpoints", 2, minimum=0, integer=True, where="cleanup.")
    return Cleanup(paths, _string(raw, "checkpoint_glob", where="cleanup.") or None, int(keep))


def _early_stop(raw: Any) -> Optional[EarlyStop]:
    if raw is None:
        return None
    known = ("metric_regex", "mode", "min_delta", "patience", "auto_stop_min_steps")
    raw = _section(raw, "early_stop", known)
    where = "early_stop."
    regex = _regex(raw, "metric_regex", where)
    if regex is None:
        raise ConfigError(where + "metric_regex", "is required")
    mode = raw.get("mode", "min")
    if mode not in ("min", "max"):
        raise ConfigError(where + "mode", "must be 'min' or 'max'")
    return EarlyStop(
        metric_regex=regex,
        mode=mode,
        min_delta=_number(raw, "min_delta", 0.0, minimum=0, where=where),
        patience=int(_number(raw, "patience", 3, minimum=1, integer=True, where=where)),
        auto_stop_min_steps=int(
            _number(raw, "auto_stop_min_steps", 0, minimum=0, integer=True, where=where)
        ),
    )
