"""`sleepwatch.toml`, validated once at start-up. Unknown keys are refused, every error names its
key, and secrets come only from the environment (never from the file)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.cadence import CadencePolicy
from core.durations import is_bare, parse_duration
from core.errors import ConfigError
from core.rules import Policy, Thresholds
from core.vocab import FixKind


def _to_seconds(value: Any) -> Any:
    """A TOML number is seconds (the key's unit); text is a human duration with its unit. A
    quoted bare number is refused: chat and the CLI read "90" as minutes (core.durations),
    the number 90 here is seconds, and neither reading may be a silent guess."""
    if isinstance(value, str):
        if is_bare(value):
            raise ValueError(
                f"{value.strip()!r} has no unit: write a number without quotes for seconds, "
                'or text with its unit ("90s", "15m", "2h")'
            )
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    return value


Seconds = Annotated[float, BeforeValidator(_to_seconds), Field(ge=0)]
RUN_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CadenceConfig(_Strict):
    early: list[Seconds] = [60.0, 120.0, 240.0, 480.0]
    cruise: Seconds = 1800.0
    alert: Seconds = 180.0
    healthy_checks_to_calm: int = Field(2, ge=1)
    scale: float = Field(1.0, gt=0)

    def policy(self) -> CadencePolicy:
        return CadencePolicy(
            early_s=tuple(self.early),
            cruise_s=self.cruise,
            alert_s=self.alert,
            healthy_checks_to_calm=self.healthy_checks_to_calm,
            scale=self.scale,
            min_interval_s=min(1.0, 1.0 / self.scale) if self.scale < 1 else 1.0,
        )


UNREACHABLE_AFTER_S = 600.0  # a network blip shorter than this is not news


class ThresholdsConfig(_Strict):
    heartbeat_stale: Seconds = 120.0
    stale_checks: int = Field(2, ge=1)
    stall_after: Seconds = 600.0
    gpu_low_pct: float = Field(10.0, ge=0, le=100)
    soft_hold: Seconds = 600.0
    soft_checks: int = Field(2, ge=1)
    throughput_drop: float = Field(0.5, gt=0, lt=1)
    unreachable_checks: int = Field(2, ge=1)
    resend_after: Seconds = 4 * 3600.0
    max_stall_kills: int = Field(1, ge=0)
    # unset: scaled from stall_after (x1.2, x3, x6), so a faster demo policy stays consistent
    hang_after: Seconds | None = None
    stall_unknown_after: Seconds | None = None
    silent_alert: Seconds | None = None
    unreachable_after: Seconds | None = None  # unset: 10 min (scaled with the cadence)

    def thresholds(self, scale: float = 1.0) -> Thresholds:
        """`scale`: the cadence's (a demo runs the same policy faster); it scales the one
        default that is about check timing rather than the trainer: `unreachable_after`."""
        stall = self.stall_after
        return Thresholds(
            hang_after_s=self.hang_after or 1.2 * stall,
            stall_unknown_after_s=self.stall_unknown_after or 3 * stall,
            silent_alert_s=self.silent_alert or 6 * stall,
            unreachable_after_s=UNREACHABLE_AFTER_S * scale
            if self.unreachable_after is None
            else self.unreachable_after,
            heartbeat_stale_s=self.heartbeat_stale,
            stale_checks=self.stale_checks,
            stall_after_s=self.stall_after,
            gpu_low_pct=self.gpu_low_pct,
            soft_hold_s=self.soft_hold,
            soft_checks=self.soft_checks,
            throughput_drop=self.throughput_drop,
            unreachable_checks=self.unreachable_checks,
            resend_after_s=self.resend_after,
            max_stall_kills=self.max_stall_kills,
        )


class SshConfig(_Strict):
    known_hosts: Path | None = None  # set: only hosts in this file are trusted; else TOFU pins
    connect_timeout: Seconds = 15.0
    keepalive: Seconds = 30.0
    exec_timeout: Seconds = 60.0
    # the hosts' sshd MaxSessions (channels per connection; stock sshd: 10). A run whose host
    # allows fewer (or more) says so with its own `max_sessions`.
    max_sessions: int = Field(10, ge=1, le=1000)


class TelegramConfig(_Strict):
    chat_ids: list[int] = []
    user_ids: list[int] = []  # set: only these people, even inside an allowed group
    api_base: str | None = None
    summary_time: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use e.g. Europe/Berlin)") from None
        return value


class VastConfig(_Strict):
    api_base: str = "https://console.vast.ai"


class KnobConfig(_Strict):
    value: float
    min: float
    factor: float = Field(0.5, gt=0, lt=1)


class GateConfig(_Strict):
    vram_gb: float | None = Field(None, gt=0)
    params_b: float | None = Field(None, gt=0)
    method: Literal["full", "lora", "qlora", "inference"] = "full"
    min_cpu_ram_gb: float | None = Field(None, gt=0)
    checkpoint_gb: float | None = Field(None, ge=0)
    min_reliability: float = Field(0.9, ge=0, le=1)
    min_cuda: float | None = None


class RunConfig(_Strict):
    name: str = Field(pattern=RUN_NAME)
    run_dir: str
    command: str = Field(min_length=1)
    instance_id: str | None = Field(None, pattern=r"^\d{1,12}$")
    local: bool = False  # supervise on this machine (demo, tests): no SSH, no cloud
    host: str | None = None
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    key: Path | None = None
    max_sessions: int | None = Field(None, ge=1, le=1000)  # this host's MaxSessions, if not [ssh]'s
    env: dict[str, str] = {}
    max_attempts: int = Field(3, ge=1, le=20)
    backoff_s: float = Field(10.0, ge=0)
    heartbeat_s: float = Field(15.0, gt=0)
    fixes: list[FixKind] | None = None  # None: the supervisor's default (all of them)
    knobs: dict[str, KnobConfig] = {}
    supervisor: dict[str, Any] = {}  # further RUN.json keys, validated by the supervisor itself
    max_hours: float | None = Field(None, gt=0)
    deadline_grace: Seconds = 900.0
    destroy_on_done: bool = True
    destroy_on_fail: bool = True
    dph_total: float | None = Field(None, ge=0)  # $/h when no provider reports it
    cadence: CadenceConfig | None = None
    thresholds: ThresholdsConfig | None = None
    gate: GateConfig | None = None
    python: str | None = None  # default: [watcher] python
    remote_root: str | None = None  # default: [watcher] remote_root

    @model_validator(mode="after")
    def _has_a_place_to_run(self) -> RunConfig:
        if not (self.local or self.host or self.instance_id):
            raise ValueError("set `host` (SSH), `instance_id` (Vast.ai) or `local = true`")
        return self


class WatcherConfig(_Strict):
    state_dir: Path = Path("~/.local/share/sleepwatch")
    python: str = "python3"  # the instance's Python (3.9+) that runs the supervisor
    remote_root: str = "/root/.sleepwatch"  # where the supervisor package is uploaded
    watcher_id: str = "sleepwatch"
    wait_timeout: Seconds = 300.0
    # how often `serve` checks itself (store file, health, pruning) and writes its heartbeat
    heartbeat: Annotated[float, BeforeValidator(_to_seconds), Field(gt=0, le=60)] = 30.0
    failing_checks_alert: int = Field(3, ge=1, le=1000)  # checks raising in a row, then alert

    def resolved_state_dir(self) -> Path:
        return self.state_dir.expanduser()


class Config(_Strict):
    watcher: WatcherConfig = WatcherConfig()
    cadence: CadenceConfig = CadenceConfig()
    thresholds: ThresholdsConfig = ThresholdsConfig()
    ssh: SshConfig = SshConfig()
    telegram: TelegramConfig = TelegramConfig()
    vast: VastConfig = VastConfig()
    runs: list[RunConfig] = []

    @field_validator("runs")
    @classmethod
    def _unique_names(cls, runs: list[RunConfig]) -> list[RunConfig]:
        names = [r.name for r in runs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate run names: {', '.join(duplicates)}")
        return runs

    def run(self, name: str) -> RunConfig:
        for run in self.runs:
            if run.name == name:
                return run
        raise ConfigError(f"no [[runs]] entry named {name!r}")

    def find_run(self, name: str) -> RunConfig | None:
        return next((r for r in self.runs if r.name == name), None)

    def set_runs(self, runs: Sequence[RunConfig]) -> None:
        """Replace the runs this Config knows, in place: the one Config object is shared by
        every part of a running serve, which learns runs from the store (the settings they
        were launched with) and from a re-read config file."""
        self.runs[:] = list(runs)

    def resolved_run(self, run: RunConfig) -> RunConfig:
        """The run with every setting the watcher uses filled in from this file's defaults, as
        stored with the run at launch (a serve started with another file still knows them)."""
        key = run.key.expanduser().resolve() if run.key is not None else None
        return run.model_copy(
            update={
                "cadence": run.cadence or self.cadence,
                "thresholds": run.thresholds or self.thresholds,
                "python": run.python or self.watcher.python,
                "remote_root": self._default_root(run),
                "key": key,
            }
        )

    def _default_root(self, run: RunConfig) -> str:
        if run.remote_root is not None:
            return run.remote_root
        if run.local:
            return str(self.watcher.resolved_state_dir() / "supervisor-code")
        return self.watcher.remote_root

    def remote_root(self, run_name: str) -> str:
        """Where the run's supervisor package lives: a local folder for local runs."""
        run = self.find_run(run_name)
        if run is None:
            return self.watcher.remote_root
        return self._default_root(run)

    def python(self, run_name: str) -> str:
        run = self.find_run(run_name)
        return (run.python if run else None) or self.watcher.python

    def policy_for(self, run: RunConfig) -> Policy:
        cadence = run.cadence or self.cadence
        thresholds = (run.thresholds or self.thresholds).thresholds(cadence.scale)
        # a supervisor that beats rarely is not dead after one missed beat
        stale_s = max(thresholds.heartbeat_stale_s, 4 * run.heartbeat_s)
        return Policy(
            thresholds=replace(thresholds, heartbeat_stale_s=stale_s), cadence=cadence.policy()
        )


class RunSettings(_Strict):
    """What the store keeps of a run's settings (runs.settings): the resolved RunConfig it
    was launched with, validated again when read."""

    schema_: Literal[1] = Field(1, alias="schema")
    run: RunConfig

    @classmethod
    def of(cls, run: RunConfig) -> RunSettings:
        return cls(schema=1, run=run)

    def to_text(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_text(cls, text: str) -> RunConfig:
        """The stored run; raises ConfigError naming what is wrong."""
        try:
            return cls.model_validate_json(text).run
        except ValidationError as exc:
            lines = [f"{_where(e['loc'])}: {_message(e)}" for e in exc.errors()[:3]]
            raise ConfigError("stored run settings: " + "; ".join(lines)) from None


def changed_keys(old: RunConfig, new: RunConfig) -> list[str]:
    """The settings that differ, by name (for the log line that says a change was applied)."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


class Secrets(BaseSettings):
    """Secrets, from the environment only. SecretStr keeps them out of repr, logs and errors."""

    model_config = SettingsConfigDict(extra="ignore")

    telegram_token: SecretStr | None = Field(None, validation_alias="SLEEPWATCH_TELEGRAM_TOKEN")
    vast_api_key: SecretStr | None = Field(None, validation_alias="VAST_API_KEY")


def parse_config(doc: dict[str, Any], *, source: str = "sleepwatch.toml") -> Config:
    try:
        return Config.model_validate(doc)
    except ValidationError as exc:
        lines = [f"{source}: {_where(e['loc'])}: {_message(e)}" for e in exc.errors()[:5]]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(doc, source=str(path))


SECRET_KEYS = {"token": "SLEEPWATCH_TELEGRAM_TOKEN", "api_key": "VAST_API_KEY"}


def _message(error: Any) -> str:
    key = str(error["loc"][-1]) if error["loc"] else ""
    for fragment, variable in SECRET_KEYS.items():
        if fragment in key and error["type"] == "extra_forbidden":
            return f"secrets are never read from the file: set {variable} in the environment"
    return str(error["msg"])


def _where(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        else:
            parts.append(part)
    return ".".join(parts) or "(top level)"
