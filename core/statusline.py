"""The one-line status of a check, exactly as the contract in ARCHITECTURE.md says:

`ts status attempt step gpu mem fix run`, e.g.
`2026-11-28T03:12:09Z running 2/3 41200/90000 97% 71.3/80.0G oom llama-ft`

Built by core.decide for every check (printed by the watcher and stored with the check row) and
by core.exits and core.messages for terminal summaries and alerts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from core.protocol import GpuReading, SupervisorState
from core.text import clean_line

FIELD_MAX_CHARS = 32
_SPACES = re.compile(r"\s+")


def clean_field(text: str) -> str:
    """One field of the line from text the instance wrote (a fix kind, a run name): no escape,
    no control character, no space or newline (one line, fields split on spaces), bounded."""
    cleaned = _SPACES.sub("_", clean_line(text)).strip("_")[:FIELD_MAX_CHARS]
    return cleaned or "?"


def format_ts(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_gpu(gpus: Sequence[GpuReading]) -> str:
    utils = [g.util_pct for g in gpus if g.util_pct is not None]
    if not utils:
        return "-"
    return f"{round(sum(utils) / len(utils))}%"


def format_mem(gpus: Sequence[GpuReading]) -> str:
    pairs = [
        (g.mem_used_mb, g.mem_total_mb)
        for g in gpus
        if g.mem_used_mb is not None and g.mem_total_mb is not None
    ]
    if not pairs:
        return "-"
    used_gib = sum(u for u, _ in pairs) / 1024
    total_gib = sum(t for _, t in pairs) / 1024
    return f"{used_gib:.1f}/{total_gib:.1f}G"


def format_step(step: int | None, total: int | None) -> str:
    if step is None:
        return "-"
    return f"{step}/{total}" if total else str(step)


def status_line(
    *,
    now: datetime,
    run: str,
    state: SupervisorState | None,
    gpus: Sequence[GpuReading] = (),
    status: str | None = None,
) -> str:
    """Build the line. `status` overrides the supervisor's (e.g. `unreachable`, `invalid`) when
    there is no state to read; `gpus` are the probe's live readings, else the state's."""
    readings = gpus or (state.gpus if state else ())
    if state is None:
        fields = [status or "unknown", "-", "-", format_gpu(readings), format_mem(readings), "-"]
    else:
        last_fix = clean_field(state.fixes[-1].kind) if state.fixes else "-"
        fields = [
            status or state.status.value,
            f"{state.attempt}/{state.max_attempts}",
            format_step(state.step, state.total_steps),
            format_gpu(readings),
            format_mem(readings),
            last_fix,
        ]
    return " ".join([format_ts(now), *fields, clean_field(run)])
