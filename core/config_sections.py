"""The sections of `sleepwatch.toml` that are plain settings blocks: cadence, thresholds, ssh,
telegram, vast, a run's knobs and its run-first gate, and the `Seconds` type every duration
key uses. Each model refuses unknown keys; the ones that feed a pure rule build its policy
(CadenceConfig.policy, ThresholdsConfig.thresholds).

Only core.config composes them into the file's Config and RunConfig (and re-exports them);
read once at start-up by the composition root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.cadence import CadencePolicy
from core.durations import is_bare, parse_duration
from core.rules import Thresholds


def to_seconds(value: Any) -> Any:
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


Seconds = Annotated[float, BeforeValidator(to_seconds), Field(ge=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CadenceConfig(Strict):
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


class ThresholdsConfig(Strict):
    heartbeat_stale: Seconds = 120.0
    stale_checks: int = Field(2, ge=1)
    stall_after: Seconds = 600.0
    gpu_low_pct: float = Field(10.0, ge=0, le=100)
    soft_hold: Seconds = 600.0
    soft_checks: int = Field(2, ge=1)
    throughput_drop: float = Field(0.7, gt=0, lt=1)
    slow_hold: Seconds = 1800.0  # ...held this long (and 3 checks): longer than a transient dip
    slow_lost: Seconds = 3600.0  # ...and cost the run this much of its time: news, not a phase
    unreachable_checks: int = Field(2, ge=1)
    resend_after: Seconds = 4 * 3600.0
    max_stall_kills: int = Field(1, ge=0)
    disk_low_mb: float = Field(10240.0, ge=0)  # free disk on the instance below it: alert; 0: off
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
            slow_hold_s=self.slow_hold,
            slow_lost_s=self.slow_lost,
            unreachable_checks=self.unreachable_checks,
            resend_after_s=self.resend_after,
            max_stall_kills=self.max_stall_kills,
            disk_low_mb=self.disk_low_mb,
        )


class SshConfig(Strict):
    known_hosts: Path | None = None  # set: only hosts in this file are trusted; else TOFU pins
    connect_timeout: Seconds = 15.0
    keepalive: Seconds = 30.0
    exec_timeout: Seconds = 60.0
    # the hosts' sshd MaxSessions (channels per connection; stock sshd: 10). A run whose host
    # allows fewer (or more) says so with its own `max_sessions`.
    max_sessions: int = Field(10, ge=1, le=1000)


class TelegramConfig(Strict):
    chat_ids: list[int] = []
    user_ids: list[int] = []  # set: only these people, even inside an allowed group
    api_base: str | None = None
    summary_time: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # IANA name for the times a person reads (muted until, deadline); None: this machine's.
    # Status lines stay UTC.
    timezone: str | None = None
    # A healthy run's one terminal message: "silent" (default) or "loud" (it wakes you).
    notify_done: Literal["loud", "silent"] = "silent"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use e.g. Europe/Berlin)") from None
        return value

    @property
    def zone_name(self) -> str:
        """The configured zone, else this machine's (as tzlocal reads it), else UTC."""
        if self.timezone is not None:
            return self.timezone
        try:
            import tzlocal

            name = str(tzlocal.get_localzone_name() or "UTC")
            ZoneInfo(name)
        except Exception:  # no readable local zone (a bare container): UTC
            return "UTC"
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)


class VastConfig(Strict):
    api_base: str = "https://console.vast.ai"


class KnobConfig(Strict):
    value: float
    min: float
    factor: float = Field(0.5, gt=0, lt=1)


class GateConfig(Strict):
    vram_gb: float | None = Field(None, gt=0)
    params_b: float | None = Field(None, gt=0)
    method: Literal["full", "lora", "qlora", "inference"] = "full"
    min_cpu_ram_gb: float | None = Field(None, gt=0)
    checkpoint_gb: float | None = Field(None, ge=0)
    min_reliability: float = Field(0.9, ge=0, le=1)
    min_cuda: float | None = None
