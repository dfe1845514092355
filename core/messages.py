"""Pure builders of what a human reads: alerts, recoveries, terminal summaries, advice.

Called by core.decide (alerts and recoveries of a check), core.exits (the terminal summary) and
core.control (/status); rendered by the notifier (bot/render.py, core/console.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from core.durations import format_duration
from core.models import MessageKind, OutboundMessage, RunRecord
from core.protocol import Failure, FailureKind, Outcome, ProbeSnapshot, SupervisorState
from core.rules import ERROR_MARKERS, Finding
from core.statusline import format_step, format_ts
from core.text import capped_line, capped_lines
from core.vocab import RunStatus, label

MAX_CONTEXT_LINES = 80
_METRIC = re.compile(
    r"(loss|acc\w*|eval_\w+|metric|f1|bleu|perplexity|epoch)['\"]?\s*[:=]\s*-?\d", re.IGNORECASE
)


def log_context(
    probe: ProbeSnapshot | None, state: SupervisorState | None, *, retry: bool = False
) -> tuple[str, ...]:
    """The failure excerpt of the attempt just retried, else the lines around the newest
    traceback in the new log text, else the failure excerpt of a failed run, else the last
    lines of the attempt."""
    failure = state.last_failure if state else None
    if retry and failure is not None and failure.excerpt:
        return _trimmed(capped_lines(failure.excerpt)[-MAX_CONTEXT_LINES:])
    if probe and probe.log and probe.log.text:
        lines = capped_lines(probe.log.text)
        for index in range(len(lines) - 1, -1, -1):
            if "Traceback (most recent call last)" in lines[index]:  # may follow a bar
                start = max(0, index - 5)
                return tuple(lines[start : start + MAX_CONTEXT_LINES])
        marked = [i for i, line in enumerate(lines) if ERROR_MARKERS.search(line)]
        if marked:
            start = max(0, marked[-1] - 20)
            return tuple(lines[start : marked[-1] + 5])
    if state and state.status.terminal and failure is not None and failure.excerpt:
        return _trimmed(capped_lines(failure.excerpt)[-MAX_CONTEXT_LINES:])
    if probe:
        return tuple(capped_line(line) for line in probe.tail[-MAX_CONTEXT_LINES:])
    return ()


def _trimmed(lines: Sequence[str]) -> tuple[str, ...]:
    """Without the blank lines at either end."""
    kept = list(lines)
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return tuple(kept)


def finding_label(key: str) -> str:
    """`attempt:3` -> `retrying`: a human name for a condition or event key (core.vocab)."""
    return label(key)


def alert_message(
    run: str, status_line: str, findings: Sequence[Finding], log_lines: Sequence[str]
) -> OutboundMessage:
    keys = "; ".join(dict.fromkeys(finding_label(f.key) for f in findings))
    context = tuple(log_lines)
    # Instance text a reason refers to goes in the log block, once (a traceback's line is
    # usually in the context already).
    quotes = [
        quoted
        for f in findings
        if f.quote is not None and (quoted := capped_line(f.quote)) not in context
    ]
    return OutboundMessage(
        kind=MessageKind.ALERT,
        title=f"⚠ {run}: {keys}",
        run=run,
        status_line=status_line,
        reasons=tuple(f.reason for f in findings),
        log_lines=(*dict.fromkeys(quotes), *context),
    )


def recovery_message(run: str, status_line: str, conditions: Sequence[str]) -> OutboundMessage:
    return OutboundMessage(
        kind=MessageKind.RECOVERY,
        title=f"✓ {run}: recovered ({', '.join(finding_label(c) for c in conditions)})",
        run=run,
        status_line=status_line,
    )


def last_metric_line(tail: Sequence[str]) -> str | None:
    for line in reversed(tail):
        cleaned = capped_line(line)
        if _METRIC.search(cleaned) and not ERROR_MARKERS.search(cleaned):
            return cleaned[:200]
    return None


def cost_usd(hours: float, dph_total: float | None) -> float | None:
    return None if dph_total is None else round(hours * dph_total, 2)


_MISSING_MODULE = re.compile(r"No module named '([^']{1,100})'|module '([^']{1,100})' ")
ENDED_SHORT_ADVICE = (
    "the trainer exited 0 below its own total and said nothing about stopping early: check "
    "that it really finished (an early-stop callback that logs nothing, a `break`, a data "
    "loader that ran dry) and relaunch if it did not"
)


def advice(failure: Failure | None, knobs: dict[str, float]) -> str:
    """The next change a human should try after the retry budget is spent."""
    if failure is None:
        return "read the log excerpt; no failure was classified"
    kind = failure.kind
    if failure.reported_kind:
        return (
            f"the supervisor reported a failure kind this watcher does not know "
            f"({failure.reported_kind}): read the log excerpt, and upgrade sleepwatch so both "
            "sides know it"
        )
    if kind is FailureKind.OOM:
        knob = ", ".join(f"{k}={v:g}" for k, v in knobs.items()) or "no eval knob declared"
        return (
            f"CUDA out of memory even at {knob}: lower the train batch size, enable gradient "
            "checkpointing, or use a GPU with more memory"
        )
    if kind is FailureKind.MISSING_MODULE:
        return _missing_module_advice(failure)
    tips = {
        FailureKind.HOST_OOM: "host RAM ran out (allocator error, MemoryError or the OOM "
        "killer's SIGKILL): fewer dataloader workers, smaller in-memory data, or a bigger "
        "instance",
        FailureKind.MISSING_BUILD_TOOL: "a compiler/build tool is missing: use an image with "
        "build-essential (gcc, g++, make), ninja and cmake, and the Python headers",
        FailureKind.DISK_FULL: "disk full even after cleanup: a bigger disk or fewer kept "
        "checkpoints",
        FailureKind.GPU_FAULT: "the GPU failed (device-side assert, illegal memory access, "
        "NCCL timeout, ECC/Xid error): a device-side assert is usually a bad label or index "
        "(rerun with CUDA_LAUNCH_BLOCKING=1 to find it); an illegal access or ECC/Xid error "
        "that repeats points at the machine: relaunch on another instance",
        FailureKind.TRANSIENT: "the network kept failing (HF Hub or package index 5xx, "
        "connection reset, DNS) through every retry: check the mirror or hub status, or "
        "pre-download the files into the image",
        FailureKind.SIGNAL: f"the trainer was killed by a signal (exit {failure.exit_code}): look "
        "for preemption, a `timeout` wrapper or an external kill",
        FailureKind.KILLED: "the trainer hung and was killed: look for a deadlock in data loading "
        "or NCCL",
    }
    return tips.get(
        kind,
        "the trainer's own code fails the same way each time: fix the error "
        "in the log excerpt and relaunch",
    )


def _missing_module_advice(failure: Failure) -> str:
    found = None
    for found in _MISSING_MODULE.finditer(failure.excerpt):  # noqa: B007 - the last one
        continue
    name = capped_line(next((g for g in found.groups() if g), "")) if found else ""
    module = f"module '{name}'" if name else "a module"
    return (
        f"{module} is missing and was not installed: add its distribution to requirements.txt "
        "or RUN.json pip.allow, add it to the image, or fix the import in your code"
    )


def summary_pairs(
    state: SupervisorState,
    tail: Sequence[str],
    *,
    dph_total: float | None,
    launched_at: datetime,
    now: datetime,
    instance: str,
) -> tuple[tuple[str, str], ...]:
    started = state.started_at or launched_at
    ended = state.ended_at or now
    hours = max(0.0, (now - launched_at).total_seconds() / 3600)
    cost = cost_usd(hours, dph_total)
    fixes = ", ".join(f"{f.kind} ({'ok' if f.ok else 'failed'})" for f in state.fixes) or "none"
    step = format_step(state.step, state.total_steps)
    pairs = [
        ("outcome", f"{state.status.value} ({state.outcome.value if state.outcome else '-'})"),
        ("duration", format_duration((ended - started).total_seconds())),
        ("attempts", f"{state.attempt}/{state.max_attempts}"),
        ("fixes", fixes),
        ("last step", step),
        ("last metric", last_metric_line(tail) or "-"),
        ("cost", f"${cost:.2f}" if cost is not None else "unknown (no $/h)"),
        ("instance", instance),
    ]
    if state.status is RunStatus.FAILED:
        failure = state.last_failure
        cause = f"{failure.label} (exit {failure.exit_code})" if failure else "unknown"
        pairs.append(("root cause", cause))
        pairs.append(("next change", advice(failure, state.knobs)))
    elif state.outcome is Outcome.ENDED_SHORT:
        pairs.append(("next change", ENDED_SHORT_ADVICE))
    return tuple(pairs)


def terminal_message(
    run: str,
    status_line: str,
    state: SupervisorState,
    summary: tuple[tuple[str, str], ...],
    log_lines: Sequence[str],
) -> OutboundMessage:
    short = state.outcome is Outcome.ENDED_SHORT
    icon = "⚠" if short else "✅" if state.status is RunStatus.DONE else "⛔"
    outcome = state.outcome.value if state.outcome else state.status.value
    return OutboundMessage(
        kind=MessageKind.TERMINAL,
        title=f"{icon} {run}: {state.status.value} ({outcome})",
        run=run,
        status_line=status_line,
        reasons=(_ended_short_reason(state),) if short else (),
        log_lines=tuple(log_lines) if state.status is not RunStatus.DONE or short else (),
        summary=summary,
    )


def ending_status_line(last_seen: str | None, record: RunRecord, now: datetime) -> str:
    """The status line of a run torn down before its supervisor ended: `stopped`, with the
    attempt, step and fix of the last check that read its state (GPU readings are history)."""
    parts = last_seen.split(" ") if last_seen else []
    if len(parts) == 8:
        attempt, step, fix = parts[2], parts[3], parts[6]
    else:
        attempt, step, fix = f"{record.attempt}/{record.max_attempts}", "-", "-"
    return " ".join(
        [format_ts(now), RunStatus.STOPPED.value, attempt, step, "-", "-", fix, record.name]
    )


def ending_message(
    record: RunRecord,
    line: str,
    reason: str,
    *,
    launched_at: datetime,
    now: datetime,
) -> OutboundMessage:
    """The one terminal message of a run ended by the watcher (deadline, lost instance,
    /teardown): the same summary as a supervisor's end, the instance line filled in later."""
    fields = line.split(" ")
    hours = max(0.0, (now - launched_at).total_seconds() / 3600)
    cost = cost_usd(hours, record.dph_total)
    summary = (
        ("outcome", f"stopped ({reason})"),
        ("duration", format_duration((now - launched_at).total_seconds())),
        ("attempts", fields[2]),
        ("last step", fields[3]),
        ("cost", f"${cost:.2f}" if cost is not None else "unknown (no $/h)"),
        ("instance", "(pending)"),
    )
    return OutboundMessage(
        kind=MessageKind.TERMINAL,
        title=f"⛔ {record.name}: stopped ({reason})",
        run=record.name,
        status_line=line,
        summary=summary,
    )


def _ended_short_reason(state: SupervisorState) -> str:
    return (
        f"exit 0 at step {format_step(state.step, state.total_steps)}, below its own total, "
        "with no early-stop message: not counted as completed"
    )
