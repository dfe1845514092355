"""Core's own model of what the supervisor writes and prints (state.json schema 1, probe v1).

The supervisor is standard-library only and cannot share these classes; a contract test feeds
real supervisor output to `parse_probe` so the two sides cannot drift apart silently.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from core.errors import ProtocolError

STATE_SCHEMA = 1
PROBE_VERSION = 1


class RunStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.DONE, RunStatus.FAILED, RunStatus.STOPPED)


class Outcome(StrEnum):
    COMPLETED = "completed"
    EARLY_STOPPED = "early_stopped"
    ENDED_SHORT = "ended_short"  # exit 0 below its own total, no early stop seen: alerted
    BUDGET_EXHAUSTED = "budget_exhausted"
    UNFIXABLE = "unfixable"
    KILLED = "killed"


class FailureKind(StrEnum):
    """The kinds this watcher knows. The supervisor's list (supervisor.classify.KINDS) is the
    same, held so by a contract test; a kind from a newer supervisor is still read (Failure)."""

    OOM = "oom"
    HOST_OOM = "host_oom"
    MISSING_MODULE = "missing_module"
    MISSING_BUILD_TOOL = "missing_build_tool"
    DISK_FULL = "disk_full"
    GPU_FAULT = "gpu_fault"
    TRANSIENT = "transient"
    SIGNAL = "signal"
    ERROR = "error"
    KILLED = "killed"


_KNOWN_KINDS = frozenset(kind.value for kind in FailureKind)
_KIND_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class GpuReading(_Model):
    index: int
    util_pct: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    # read through NVML or nvidia-smi where the card gives them; absent from older supervisors
    mem_util_pct: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    throttle: tuple[str, ...] | None = None
    ecc_uncorrected: int | None = None
    error: str | None = None


class GpuReadStatus(_Model):
    """How the GPUs were read. `status` is an open word: ok, none (no GPU on the machine),
    unreadable (a GPU stack that did not answer); an unknown word is shown, never refused."""

    status: str = "ok"
    source: str | None = None
    error: str | None = None


class Activity(_Model):
    """The trainer's process tree at the last heartbeat (CPU seconds and read+written bytes
    of the trainer and its descendants); None where /proc could not tell."""

    cpu_s: float | None = Field(default=None, ge=0)
    io_bytes: int | None = Field(default=None, ge=0)
    pids: int | None = Field(default=None, ge=0)
    at: AwareDatetime | None = None
    last_cpu_at: AwareDatetime | None = None
    last_io_at: AwareDatetime | None = None


class AppliedFix(_Model):
    attempt: int
    kind: str
    action: str
    ok: bool
    at: AwareDatetime


class Failure(_Model):
    """`last_failure`. The kind is an open vocabulary: one this watcher does not know is kept
    as `reported_kind` and handled as an `error` (nothing to fix here), shown as
    `error (<kind>)`, never a reason to call the state invalid."""

    attempt: int
    kind: FailureKind
    exit_code: int | None = None
    excerpt: str = ""
    reported_kind: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _open_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            raw = data["kind"]
            if raw not in _KNOWN_KINDS:
                shown = _KIND_CHARS.sub("?", raw)[:40] or "?"
                return {**data, "kind": FailureKind.ERROR.value, "reported_kind": shown}
        return data

    @property
    def label(self) -> str:
        """The kind as a human reads it: `oom`, or `error (<kind>)` for an unknown one."""
        return f"error ({self.reported_kind})" if self.reported_kind else self.kind.value


class SupervisorState(_Model):
    """state.json, schema 1 (see ARCHITECTURE.md)."""

    schema_: Literal[1] = Field(alias="schema")
    run: str
    status: RunStatus
    outcome: Outcome | None = None
    attempt: int = Field(ge=0)
    max_attempts: int = Field(ge=1)
    step: int | None = Field(default=None, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    last_step_at: AwareDatetime | None = None
    last_output_at: AwareDatetime | None = None
    heartbeat_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    throughput: float | None = Field(default=None, ge=0)
    gpus: tuple[GpuReading, ...] = ()
    fixes: tuple[AppliedFix, ...] = ()
    last_failure: Failure | None = None
    knobs: dict[str, float] = Field(default_factory=dict)
    pid: int | None = None
    trainer_pid: int | None = None
    # optional (older supervisors write none of them): read as "unknown", never as "idle"
    gpu_status: GpuReadStatus | None = None
    activity: Activity | None = None
    last_activity_at: AwareDatetime | None = None  # the tree's CPU time or I/O last moved


class LogChunk(_Model):
    """New bytes of the current attempt's log since the watcher's offset, decoded leniently."""

    attempt: int
    offset: int = Field(ge=0)
    next_offset: int = Field(ge=0)
    size: int = Field(ge=0)
    skipped: int = Field(default=0, ge=0)
    text: str = ""


class ProbeSnapshot(_Model):
    """One `supervisor probe` answer. `state` is None when state.json was missing or unreadable,
    and then `state_error` says why in words a human can act on."""

    probe: int
    at: AwareDatetime
    state: SupervisorState | None = None
    state_error: str | None = None
    log: LogChunk | None = None
    tail: tuple[str, ...] = ()
    gpus: tuple[GpuReading, ...] = ()
    gpu_status: GpuReadStatus | None = None
    disk_free_mb: float | None = None


def parse_state(raw: Any) -> SupervisorState:
    """Validate a decoded state.json object; raise ProtocolError naming what is wrong."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"state is a {type(raw).__name__}, not an object")
    schema = raw.get("schema")
    if schema != STATE_SCHEMA:
        raise ProtocolError(
            f"state.json schema {schema!r} is not supported (this watcher reads schema "
            f"{STATE_SCHEMA}); upgrade sleepwatch or the supervisor so they match"
        )
    try:
        return SupervisorState.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(f"state.json is invalid: {_first_error(exc)}") from None


def parse_probe(raw: bytes | str) -> ProbeSnapshot:
    """Parse `supervisor probe` stdout. Garbage raises ProtocolError; a bad `state` inside an
    otherwise good probe does not raise: it comes back as `state=None` with `state_error` set."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        preview = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        raise ProtocolError(
            f"probe answered non-JSON ({exc.__class__.__name__}): {preview!r}"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"probe answered a {type(doc).__name__}, not an object")
    if doc.get("probe") != PROBE_VERSION:
        raise ProtocolError(
            f"probe version {doc.get('probe')!r} is not supported (expected {PROBE_VERSION})"
        )
    state_raw = doc.pop("state", None)
    state: SupervisorState | None = None
    state_error = doc.get("state_error")
    if state_raw is not None:
        try:
            state = parse_state(state_raw)
        except ProtocolError as exc:
            state_error = str(exc)
    doc["state_error"] = state_error
    try:
        return ProbeSnapshot.model_validate(doc).model_copy(update={"state": state})
    except ValidationError as exc:
        raise ProtocolError(f"probe answer is invalid: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"
