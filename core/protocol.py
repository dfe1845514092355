"""Core's own model of what the supervisor writes and prints (state.json schema 1, probe v1).

The supervisor is standard-library only and cannot share these classes; a contract test feeds
real supervisor output to `parse_probe` so the two sides cannot drift apart silently.

The bounded field types the models are built from (counts, pids, readings, clipped text) are
core.bounded. Every answer of the supervisor is read into these models by
core.supervisor_client; they are then the input of the pure rules (core.decide, core.rules)
and of the status line.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    Field,
    ValidationError,
    model_validator,
)

from core.bounded import MAX_COUNT as MAX_COUNT
from core.bounded import MAX_PID as MAX_PID
from core.bounded import MAX_READING as MAX_READING
from core.bounded import Count as Count
from core.bounded import InstanceModel
from core.bounded import KnobValue as KnobValue
from core.bounded import Percent as Percent
from core.bounded import Pid as Pid
from core.bounded import Reading as Reading
from core.bounded import ShortText as ShortText
from core.bounded import clipped as _clipped
from core.errors import ProtocolError
from core.metric_history import MetricHistory, history_from_doc

# The vocabularies live in core.vocab; they are read here, with the model that parses them.
from core.vocab import FailureKind as FailureKind
from core.vocab import Outcome as Outcome
from core.vocab import RunStatus as RunStatus

STATE_SCHEMA = 1
PROBE_VERSION = 1


_KNOWN_KINDS = frozenset(kind.value for kind in FailureKind)
_KIND_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


class GpuReading(InstanceModel):
    index: Annotated[int, Field(ge=0, le=4096)]
    util_pct: Percent = None
    mem_used_mb: Reading = None
    mem_total_mb: Reading = None
    # read through NVML or nvidia-smi where the card gives them; absent from older supervisors
    mem_util_pct: Percent = None
    temp_c: Reading = None
    power_w: Reading = None
    power_limit_w: Reading = None
    throttle: tuple[ShortText, ...] | None = Field(default=None, max_length=64)
    ecc_uncorrected: Count | None = None
    error: ShortText | None = None


class GpuRecent(InstanceModel):
    """The supervisor's heartbeat readings of the last few minutes taken while the trainer
    printed as often as it does (none of an eval's or a save's silence): how many, over how
    long, and each GPU's median utilisation and power over them. One reading lands between
    kernels or on a batch's gap; their median is the GPU's work."""

    readings: Count = 0
    span_s: Reading = None
    gpus: tuple[GpuReading, ...] = Field(default=(), max_length=64)


class GpuReadStatus(InstanceModel):
    """How the GPUs were read. `status` is an open word: ok, none (no GPU on the machine),
    unreadable (a GPU stack that did not answer); an unknown word is shown, never refused."""

    status: Annotated[str, _clipped(40)] = "ok"
    source: Annotated[str, _clipped(40)] | None = None
    error: ShortText | None = None


class Activity(InstanceModel):
    """The trainer's process tree at the last heartbeat (CPU seconds and read+written bytes
    of the trainer and its descendants); None where /proc could not tell."""

    cpu_s: Reading = None
    io_bytes: Count | None = None
    pids: Count | None = None
    at: AwareDatetime | None = None
    last_cpu_at: AwareDatetime | None = None
    last_io_at: AwareDatetime | None = None


class AppliedFix(InstanceModel):
    attempt: Count
    kind: ShortText
    action: ShortText
    ok: bool
    at: AwareDatetime


class Failure(InstanceModel):
    """`last_failure`. The kind is an open vocabulary: one this watcher does not know is kept
    as `reported_kind` and handled as an `error` (nothing to fix here), shown as
    `error (<kind>)`, never a reason to call the state invalid."""

    attempt: Count
    kind: FailureKind
    exit_code: Annotated[int, Field(ge=-(2**31), le=2**31)] | None = None
    excerpt: Annotated[str, _clipped(65536)] = ""
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


class CollectRun(InstanceModel):
    """The collect command's run (supervisor/collectcmd.py): pending, running, ok, failed (an
    open vocabulary: anything else reads as not finished)."""

    status: Annotated[str, Field(max_length=40)]
    exit_code: int | None = Field(None, ge=-(2**31), le=2**31)
    timed_out: bool = False
    excerpt: ShortText = ""
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None


class SupervisorState(InstanceModel):
    """state.json, schema 1 (see ARCHITECTURE.md)."""

    schema_: Literal[1] = Field(alias="schema")
    run: Annotated[str, Field(max_length=200)]
    status: RunStatus
    outcome: Outcome | None = None
    attempt: Count
    max_attempts: int = Field(ge=1, le=MAX_COUNT)
    step: Count | None = None
    total_steps: Count | None = None
    last_step_at: AwareDatetime | None = None
    last_output_at: AwareDatetime | None = None
    heartbeat_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    throughput: Reading = None
    gpus: tuple[GpuReading, ...] = Field(default=(), max_length=64)
    fixes: tuple[AppliedFix, ...] = Field(default=(), max_length=1000)
    last_failure: Failure | None = None
    knobs: dict[Annotated[str, Field(max_length=200)], KnobValue] = Field(
        default_factory=dict, max_length=100
    )
    pid: Pid | None = None
    trainer_pid: Pid | None = None
    # optional (older supervisors write none of them): read as "unknown", never as "idle"
    gpu_status: GpuReadStatus | None = None
    gpu_recent: GpuRecent | None = None
    activity: Activity | None = None
    last_activity_at: AwareDatetime | None = None  # the tree's CPU time or I/O last moved
    collect: CollectRun | None = None


class LogChunk(InstanceModel):
    """New bytes of the current attempt's log since the watcher's offset, decoded leniently."""

    attempt: Count
    offset: Count
    next_offset: Count
    size: Count
    skipped: Count = 0
    text: str = ""


class ProbeSnapshot(InstanceModel):
    """One `supervisor probe` answer. `state` is None when state.json was missing or unreadable,
    and then `state_error` says why in words a human can act on."""

    probe: int
    at: AwareDatetime
    state: SupervisorState | None = None
    state_error: Annotated[str, _clipped(1000)] | None = None
    log: LogChunk | None = None
    tail: tuple[ShortText, ...] = Field(default=(), max_length=1000)
    gpus: tuple[GpuReading, ...] = Field(default=(), max_length=64)
    gpu_status: GpuReadStatus | None = None
    disk_free_mb: Reading = None
    metrics: MetricHistory | None = None  # only when asked (`probe --metrics`), for a chart


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
    except Exception as exc:  # anything pydantic or a number's conversion may raise
        raise ProtocolError(f"state.json unreadable ({type(exc).__name__})") from None


def parse_probe(raw: bytes | str) -> ProbeSnapshot:
    """Parse bare `supervisor probe` stdout (one JSON object). The watcher reads answers
    through core/supervisor_client.py (noise, byte cap, depth guard), then `probe_from_doc`."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        preview = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        raise ProtocolError(
            f"probe answered non-JSON ({exc.__class__.__name__}): {preview!r}"
        ) from None
    return probe_from_doc(doc)


def probe_from_doc(doc: Any) -> ProbeSnapshot:
    """Validate a decoded probe answer. Garbage raises ProtocolError; a bad `state` inside an
    otherwise good probe does not raise: it comes back as `state=None` with `state_error` set."""
    if not isinstance(doc, dict):
        raise ProtocolError(f"probe answered a {type(doc).__name__}, not an object")
    if doc.get("probe") != PROBE_VERSION:
        raise ProtocolError(
            f"probe version {_short_repr(doc.get('probe'))} is not supported "
            f"(expected {PROBE_VERSION})"
        )
    doc = dict(doc)
    metrics = _metrics(doc.pop("metrics", None))
    state_raw = doc.pop("state", None)
    state: SupervisorState | None = None
    state_error = doc.get("state_error")
    if state_raw is not None:
        try:
            state = parse_state(state_raw)
        except ProtocolError as exc:
            state_error = str(exc)
    doc["state_error"] = state_error if isinstance(state_error, str) else None
    try:
        snapshot = ProbeSnapshot.model_validate(doc)
        return snapshot.model_copy(update={"state": state, "metrics": metrics})
    except ValidationError as exc:
        raise ProtocolError(f"probe answer is invalid: {_first_error(exc)}") from None
    except Exception as exc:  # anything pydantic or a number's conversion may raise
        raise ProtocolError(f"probe answer unreadable ({type(exc).__name__})") from None


def _metrics(raw: Any) -> MetricHistory | None:
    """A broken metric history costs the chart, never the probe."""
    try:
        return history_from_doc(raw)
    except Exception:  # noqa: BLE001 - pydantic or a conversion; the chart is optional
        return None


def _short_repr(value: Any) -> str:
    if isinstance(value, int | float | str | None):  # never repr() a nested object
        return repr(value)[:40]
    return f"<{type(value).__name__}>"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"
