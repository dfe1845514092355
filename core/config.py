"""`sleepwatch.toml`, validated once at start-up. Unknown keys are refused, every error names its
key, and secrets come only from the environment (never from the file).

Loaded by the composition root (core.runtime, from core.cli and bot.app) and read by launch,
core.run_settings (each run's effective settings, resolved in one place) and the store's run
settings (StoredSettings). The
plain sections (cadence, thresholds, ssh, telegram, vast, knobs, gate) are
core.config_sections, re-exported here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.config_sections import UNREACHABLE_AFTER_S as UNREACHABLE_AFTER_S
from core.config_sections import CadenceConfig as CadenceConfig
from core.config_sections import GateConfig as GateConfig
from core.config_sections import KnobConfig as KnobConfig
from core.config_sections import Seconds as Seconds
from core.config_sections import SshConfig as SshConfig
from core.config_sections import Strict as _Strict
from core.config_sections import TelegramConfig as TelegramConfig
from core.config_sections import ThresholdsConfig as ThresholdsConfig
from core.config_sections import VastConfig as VastConfig
from core.config_sections import to_seconds as _to_seconds
from core.errors import ConfigError
from core.vocab import FixKind

RUN_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
INSTANCE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
PROVIDER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class CollectConfig(_Strict):
    """What is copied off the instance before teardown (core/collect.py does it)."""

    # shell globs on the instance, relative to run_dir or absolute; a folder takes its files
    paths: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default=[], max_length=64
    )
    to: Literal["local", "command"] = "local"
    dest: Path | None = None  # local: default <state_dir>/outputs/<run>
    command: list[str] = []  # command: the user's own upload, an argument list
    max_mb_s: float | None = Field(None, gt=0)  # local: cap the pull's bandwidth

    @model_validator(mode="after")
    def _complete(self) -> CollectConfig:
        if self.to == "local" and not self.paths:
            raise ValueError('`to = "local"` needs `paths` (globs on the instance)')
        if self.to == "command" and not (self.command and self.command[0]):
            raise ValueError('`to = "command"` needs `command` (an argument list)')
        for path in self.paths:
            if ".." in path.split("/") or "\x00" in path:
                raise ValueError(f"refusing the path {path!r}: no '..' components")
        return self


class RunConfig(_Strict):
    name: str = Field(pattern=RUN_NAME)
    run_dir: str
    command: str = Field(min_length=1)
    # The provider's own id check runs at start-up (core/providers/registry.py, check_runs);
    # here only a bound every provider's ids keep to.
    instance_id: str | None = Field(None, pattern=INSTANCE_ID)
    provider: str = Field("vast", pattern=PROVIDER_NAME)  # whose instance: core/providers
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
    collect: CollectConfig | None = None
    collect_timeout: Seconds = 7200.0  # collection not verified by then: alert, then policy
    destroy_when_uncollected: bool = False  # destroy even when outputs were not all collected
    dph_total: float | None = Field(None, ge=0)  # $/h when no provider reports it
    # USD: warned an hour of spend ahead, then stopped and torn down (/extend raises it)
    max_cost: float | None = Field(None, gt=0)
    # an instance left billing after the run ended is reminded this often, until /keep
    kept_reminder: Annotated[float, BeforeValidator(_to_seconds), Field(gt=0)] = 4 * 3600.0
    cadence: CadenceConfig | None = None
    thresholds: ThresholdsConfig | None = None
    gate: GateConfig | None = None
    python: str | None = None  # default: [watcher] python
    remote_root: str | None = None  # default: [watcher] remote_root

    @model_validator(mode="after")
    def _has_a_place_to_run(self) -> RunConfig:
        if not (self.local or self.host or self.instance_id):
            raise ValueError("set `host` (SSH), `instance_id` (a cloud instance) or `local = true`")
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
    # find_run's index; rebuilt by set_runs (the one way runs change) or on a changed count
    _index: dict[str, RunConfig] | None = PrivateAttr(default=None)
    _indexed_count: int = PrivateAttr(default=0)

    @field_validator("runs")
    @classmethod
    def _unique_names(cls, runs: list[RunConfig]) -> list[RunConfig]:
        names = [r.name for r in runs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate run names: {', '.join(duplicates)}")
        return runs

    def run(self, name: str) -> RunConfig:
        run = self.find_run(name)
        if run is None:
            raise ConfigError(f"no [[runs]] entry named {name!r}")
        return run

    def find_run(self, name: str) -> RunConfig | None:
        """The run's entry as it is watched, looked up in an index (every check asks, several
        times: a scan of 5,000 runs each time made a check's cost grow with the fleet).
        core.run_settings.settings_for fills in the defaults: use that for any setting."""
        index = self._index
        if index is None or self._indexed_count != len(self.runs):
            index = self._index = {r.name: r for r in self.runs}
            self._indexed_count = len(self.runs)
        return index.get(name)

    def set_runs(self, runs: Sequence[RunConfig]) -> None:
        """Replace the runs this Config knows, in place: the one Config object is shared by
        every part of a running serve, which learns runs from the store (the settings they
        were launched with) and from a re-read config file."""
        self.runs[:] = list(runs)
        self._index = None


class StoredSettings(_Strict):
    """What the store keeps of a run's settings (runs.settings): the resolved RunConfig it
    was launched with (core.run_settings.resolve_run), validated again when read."""

    schema_: Literal[1] = Field(1, alias="schema")
    run: RunConfig

    @classmethod
    def of(cls, run: RunConfig) -> StoredSettings:
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


ENV_FILE_NAME = "sleepwatch.env"  # beside the config file: the secrets `sleepwatch init` wrote


class Secrets(BaseSettings):
    """Secrets, from the environment, or from systemd's credentials (`LoadCredential=`: a file
    named like the variable in $CREDENTIALS_DIRECTORY; the environment wins), never from the
    config file. SecretStr keeps them out of repr, logs and errors."""

    model_config = SettingsConfigDict(extra="ignore")

    telegram_token: SecretStr | None = Field(None, validation_alias="SLEEPWATCH_TELEGRAM_TOKEN")
    vast_api_key: SecretStr | None = Field(None, validation_alias="VAST_API_KEY")
    # healthchecks.io style: its UUID is a capability, so it is a secret too
    ping_url: SecretStr | None = Field(None, validation_alias="SLEEPWATCH_PING_URL")

    @field_validator("ping_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("SLEEPWATCH_PING_URL must be an http:// or https:// URL")
        return value

    @classmethod
    def load(cls, environ: Mapping[str, str], env_file: Path | None = None) -> Secrets:
        """The secrets of this process, then those of `env_file` (what `sleepwatch init` wrote
        beside the config) for what the environment leaves unset; raises ConfigError naming
        the variable at fault, or the file when others may read it."""
        directory = environ.get("CREDENTIALS_DIRECTORY")
        kwargs: dict[str, Any] = {}
        if directory and Path(directory).is_dir():
            kwargs["_secrets_dir"] = directory
        if env_file is not None and env_file.is_file():
            if env_file.stat().st_mode & 0o077:
                raise ConfigError(f"{env_file} holds secrets others can read: chmod 600 it")
            kwargs["_env_file"] = env_file
        try:
            return cls(**kwargs)
        except ValidationError as exc:
            lines = [f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
            raise ConfigError("secrets: " + "; ".join(lines)) from None


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
