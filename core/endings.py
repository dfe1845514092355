"""The end of a run in words, pure: the terminal message (the supervisor's end, or the
watcher's: deadline, lost instance, /teardown), its summary (outcome, root cause, the next
change to try, instance, duration, fixes, cost), and the instance line settled by teardown.

Called by core.exits (every ending) and bot/messages_doc.py (the documented examples);
core.messages (alerts and recoveries) uses its exception reading and re-exports its names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from core.durations import format_duration
from core.models import MessageKind, OutboundMessage, RunRecord
from core.protocol import Failure, FailureKind, Outcome, SupervisorState
from core.rules import ERROR_MARKERS
from core.statusline import format_step, format_ts
from core.text import capped_line, capped_lines
from core.topics import RunFacts, Topic, actions_for, loud_for
from core.vocab import RunStatus

_METRIC = re.compile(
    r"(loss|acc\w*|eval_\w+|metric|f1|bleu|perplexity|epoch)['\"]?\s*[:=]\s*-?\d", re.IGNORECASE
)
SAFE_NAME = re.compile(r"[A-Za-z_][\w.]{0,60}")


def exception_name(excerpt: str) -> str | None:
    """The exception's type alone (`ValueError`): safe to show in sleepwatch's own words."""
    line = exception_line(excerpt)
    name = line.split(":")[0].strip() if line else ""
    return name if SAFE_NAME.fullmatch(name) else None


_EXCEPTION_LINE = re.compile(
    r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Fault)\b(?::.*)?)$"
)


def exception_line(excerpt: str) -> str | None:
    """The exception itself, as the traceback's last line names it: `ValueError: loss is NaN
    at step 1200`. None when the excerpt names none."""
    for line in reversed(capped_lines(excerpt)):
        found = _EXCEPTION_LINE.match(line)
        if found:
            return found.group(1).strip()[:200]
    return None


def root_cause(failure: Failure) -> str:
    """The failure in words: its kind and the exception that ended the attempt, else its exit."""
    named = exception_line(failure.excerpt)
    exit_code = f"exit {failure.exit_code}"
    return f"{failure.label}: {named} ({exit_code})" if named else f"{failure.label} ({exit_code})"


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

# The next change for a failure kind with one cause to name ({exit_code} is filled in).
_TIPS = {
    FailureKind.HOST_OOM: "host RAM ran out (allocator error, MemoryError or the OOM "
    "killer's SIGKILL): fewer dataloader workers, smaller in-memory data, or a bigger "
    "instance",
    FailureKind.MISSING_BUILD_TOOL: "a compiler/build tool is missing: use an image with "
    "build-essential (gcc, g++, make), ninja and cmake, and the Python headers",
    FailureKind.DISK_FULL: "disk full even after cleanup: a bigger disk or fewer kept checkpoints",
    FailureKind.GPU_FAULT: "the GPU failed (device-side assert, illegal memory access, "
    "NCCL timeout, ECC/Xid error): a device-side assert is usually a bad label or index "
    "(rerun with CUDA_LAUNCH_BLOCKING=1 to find it); an illegal access or ECC/Xid error "
    "that repeats points at the machine: relaunch on another instance",
    FailureKind.TRANSIENT: "the network kept failing (HF Hub or package index 5xx, "
    "connection reset, DNS) through every retry: check the mirror or hub status, or "
    "pre-download the files into the image",
    FailureKind.SIGNAL: "the trainer was killed by a signal (exit {exit_code}): look "
    "for preemption, a `timeout` wrapper or an external kill",
    FailureKind.KILLED: "the trainer hung and was killed: look for a deadlock in data loading "
    "or NCCL",
}


def advice(failure: Failure | None, knobs: dict[str, float], *, attempts: int = 2) -> str:
    """The next change a human should try after the run failed, fitting the case: after one
    attempt (`max_attempts = 1`, or an unfixable failure) nothing was seen to repeat."""
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
    if kind in _TIPS:
        return _TIPS[kind].format(exit_code=failure.exit_code)
    return _own_code_advice(failure, attempts)


def _own_code_advice(failure: Failure, attempts: int) -> str:
    named = exception_name(failure.excerpt)  # the whole line is in the root cause, as code
    error = f"raised {named}" if named else f"exited {failure.exit_code}"
    if attempts <= 1:
        return (
            f"the trainer's own code {error} (it was not retried): fix it and relaunch, or "
            "raise max_attempts if it can be a passing fault"
        )
    return (
        f"the trainer's own code {error} in each of {attempts} attempts: fix that error "
        "(see the log excerpt) and relaunch"
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
    stall_kills: Sequence[int] = (),
) -> tuple[tuple[str, str], ...]:
    """The verdict first (outcome, root cause naming the exception, the next change, what
    happened to the instance), then the facts. A stall recovery counts among the fixes."""
    started = state.started_at or launched_at
    ended = state.ended_at or now
    hours = max(0.0, (now - launched_at).total_seconds() / 3600)
    cost = cost_usd(hours, dph_total)
    fixes = [f"{f.kind} ({'ok' if f.ok else 'failed'})" for f in state.fixes]
    fixes.extend(f"stall (attempt {a} killed, retried)" for a in stall_kills)
    step = format_step(state.step, state.total_steps)
    pairs = [("outcome", f"{state.status.value} ({state.outcome.value if state.outcome else '-'})")]
    if state.status is RunStatus.FAILED:
        failure = state.last_failure
        pairs.append(("root cause", root_cause(failure) if failure else "unknown"))
        pairs.append(("next change", advice(failure, state.knobs, attempts=state.attempt)))
    elif state.outcome is Outcome.ENDED_SHORT:
        pairs.append(("next change", ENDED_SHORT_ADVICE))
    pairs += [
        ("instance", instance),
        ("duration", format_duration((ended - started).total_seconds())),
        ("attempts", f"{state.attempt}/{state.max_attempts}"),
        ("fixes", ", ".join(fixes) or "none"),
        ("last step", step),
        ("last metric", last_metric_line(tail) or "-"),
        ("cost", f"${cost:.2f}" if cost is not None else "unknown (no $/h)"),
    ]
    return tuple(pairs)


def terminal_topic(state: SupervisorState) -> Topic:
    if state.outcome is Outcome.ENDED_SHORT:
        return Topic.ENDED_SHORT
    if state.status is RunStatus.DONE:
        return Topic.DONE
    if state.status is RunStatus.STOPPED:  # only a `ctl stop` stops a run: /kill or /teardown
        return Topic.STOPPED_BY_YOU
    return Topic.FAILED


def terminal_message(
    run: str,
    status_line: str,
    state: SupervisorState,
    summary: tuple[tuple[str, str], ...],
    log_lines: Sequence[str],
    *,
    notify_done: str = "silent",
) -> OutboundMessage:
    """The run's one terminal message. Loud when it failed or ended short; a healthy end only
    with `notify_done = "loud"`. Its instance line (and loudness, if it still bills) is
    settled when the teardown is (`with_instance_line`)."""
    short = state.outcome is Outcome.ENDED_SHORT
    icon = "⚠" if short else "✅" if state.status is RunStatus.DONE else "⛔"
    outcome = state.outcome.value if state.outcome else state.status.value
    topic = terminal_topic(state)
    return OutboundMessage(
        kind=MessageKind.TERMINAL,
        title=f"{icon} {run}: {state.status.value} ({outcome})",
        run=run,
        status_line=status_line,
        reasons=(_ended_short_reason(state),) if short else (),
        log_lines=tuple(log_lines) if state.status is not RunStatus.DONE or short else (),
        summary=summary,
        topic=topic,
        loud=loud_for((topic,), notify_done=notify_done),
        actions=actions_for((topic,), RunFacts(live=False)),
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
    requested: bool = False,
) -> OutboundMessage:
    """The one terminal message of a run ended by the watcher (deadline, lost instance,
    /teardown): the same summary as a supervisor's end, the instance line filled in later."""
    fields = line.split(" ")
    hours = max(0.0, (now - launched_at).total_seconds() / 3600)
    cost = cost_usd(hours, record.dph_total)
    summary = (
        ("outcome", f"stopped ({reason})"),
        ("instance", "(pending)"),
        ("duration", format_duration((now - launched_at).total_seconds())),
        ("attempts", fields[2]),
        ("last step", fields[3]),
        ("cost", f"${cost:.2f}" if cost is not None else "unknown (no $/h)"),
    )
    topic = Topic.STOPPED_BY_YOU if requested else Topic.STOPPED
    return OutboundMessage(
        kind=MessageKind.TERMINAL,
        title=f"⛔ {record.name}: stopped ({reason})",
        run=record.name,
        status_line=line,
        summary=summary,
        topic=topic,
        loud=loud_for((topic,)),
        actions=actions_for((topic,), RunFacts(live=False)),
    )


def with_instance_line(message: OutboundMessage, line: str, *, billing: bool) -> OutboundMessage:
    """The terminal message with what happened to the instance; one that still bills (kept by
    policy) is loud and offers Teardown."""
    summary = tuple((k, line if k == "instance" else v) for k, v in message.summary)
    if not billing:
        return replace(message, summary=summary)
    topics = (message.topic or Topic.STILL_BILLING, Topic.STILL_BILLING)
    facts = RunFacts(live=False, has_instance=True)
    return replace(message, summary=summary, loud=True, actions=actions_for(topics, facts))


def _ended_short_reason(state: SupervisorState) -> str:
    return (
        f"exit 0 at step {format_step(state.step, state.total_steps)}, below its own total, "
        "with no early-stop message: not counted as completed"
    )
