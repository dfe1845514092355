"""Pure builders of what a human reads: alerts, recoveries, terminal summaries, advice.

Called by core.decide (alerts and recoveries of a check), core.exits (the terminal summary) and
core.control (/status); rendered by the notifier (bot/render.py, core/console.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from core.durations import format_duration
from core.models import MessageKind, OutboundMessage, RunRecord
from core.protocol import Failure, FailureKind, Outcome, ProbeSnapshot, SupervisorState
from core.rules import ERROR_MARKERS, Finding
from core.statusline import format_step, format_ts
from core.text import capped_line, capped_lines
from core.topics import RunFacts, Topic, actions_for, finding_topic, lead_topic, loud_for
from core.vocab import RunStatus, is_loud, label

MAX_CONTEXT_LINES = 80
NO_FACTS = RunFacts()
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
    run: str,
    status_line: str,
    findings: Sequence[Finding],
    log_lines: Sequence[str],
    *,
    state: SupervisorState | None = None,
    facts: RunFacts = NO_FACTS,
) -> OutboundMessage:
    """One message for one check's findings: a headline that says what happened in words (the
    most urgent finding's), loud only when one of them needs a human (core.topics), with the
    buttons that fit. A deadline or cost alert carries no training log: the log is not news."""
    healed = _healed(state)
    topics = [finding_topic(f.key, healed=healed) for f in findings]
    lead = lead_topic(topics)
    context = () if set(topics) <= _NO_LOG_TOPICS else tuple(log_lines)
    # Instance text a reason refers to goes in the log block, once (a traceback's line is
    # usually in the context already).
    quotes = [
        quoted
        for f in findings
        if f.quote is not None
        for quoted in capped_lines(f.quote)
        if quoted not in context
    ]
    return OutboundMessage(
        kind=MessageKind.ALERT,
        title=headline(run, lead, findings, state),
        run=run,
        status_line=status_line,
        reasons=tuple(f.reason for f in findings),
        log_lines=(*dict.fromkeys(quotes), *context),
        topic=lead,
        # vocab's traits say which findings need a human now
        loud=any(is_loud(f.key) for f in findings),
        actions=actions_for(topics, facts) if any(is_loud(f.key) for f in findings) else (),
    )


_NO_LOG_TOPICS = frozenset({Topic.DEADLINE_AHEAD, Topic.COST_AHEAD})


def _healed(state: SupervisorState | None) -> bool:
    """The current attempt follows a fix that worked (the supervisor healed the failure)."""
    if state is None or state.attempt < 2:
        return False
    return any(f.attempt == state.attempt - 1 and f.ok for f in state.fixes)


# The headline is sleepwatch's own bold text: instance-written words reach it only in these
# narrow shapes (a name, a knob stepped between two numbers); anything else stays in <pre>.
_SAFE_NAME = re.compile(r"[A-Za-z_][\w.]{0,60}")
_KNOB_STEP = re.compile(
    r"([A-Za-z_]\w{0,40}) (-?\d{1,12}(?:\.\d{1,6})?) -> (-?\d{1,12}(?:\.\d{1,6})?)"
)


def _fix_text(state: SupervisorState | None) -> str:
    """`oom → eval_batch_size 64→32`: the failure and the fix applied before this attempt."""
    if state is None:
        return "a fix"
    fixes = [f for f in state.fixes if f.attempt == state.attempt - 1 and f.ok]
    if not fixes:
        return "a fix"
    fix = fixes[-1]
    kind = fix.kind if _SAFE_NAME.fullmatch(fix.kind) else "a fix"
    steps = [_KNOB_STEP.fullmatch(part) for part in fix.action.split(", ")[:4]]
    if not all(steps):
        return kind
    changes = ", ".join(f"{m[1]} {m[2]}→{m[3]}" for m in steps if m)
    return f"{kind} → {changes}"


def exception_name(excerpt: str) -> str | None:
    """The exception's type alone (`ValueError`): safe to show in sleepwatch's own words."""
    line = exception_line(excerpt)
    name = line.split(":")[0].strip() if line else ""
    return name if _SAFE_NAME.fullmatch(name) else None


def _attempt_text(state: SupervisorState | None) -> str:
    return f"attempt {state.attempt}/{state.max_attempts}" if state else "a new attempt"


def headline(
    run: str, lead: Topic, findings: Sequence[Finding], state: SupervisorState | None
) -> str:
    """The first line: what happened, in words (a phone's lock screen shows only this)."""
    labels = "; ".join(dict.fromkeys(finding_label(f.key) for f in findings))
    failure = state.last_failure if state else None
    if lead is Topic.SELF_HEALED:
        return f"↻ {run} self-healed: {_fix_text(state)}, {_attempt_text(state)}"
    if lead is Topic.RETRYING:
        name = exception_name(failure.excerpt) if failure else None
        cause = failure.label if failure else "an unknown failure"
        cause = f"{cause} ({name})" if name else cause
        return f"↻ {run} retrying after {cause}: {_attempt_text(state)}, no fix applied"
    if lead is Topic.STALL_RECOVERED:
        last = state is not None and state.attempt >= state.max_attempts
        then = "no attempts left" if last else "retrying"
        return f"⚠ {run} stalled — attempt killed, {then}"
    if lead is Topic.ERROR_IN_LOG:
        return f"⚠ {run}: error in the log, the run goes on"
    if lead is Topic.HOST_KEY:
        return f"⛔ {run}: host key changed — checks stopped, needs you"
    if lead is Topic.INSTANCE_LOST:
        return f"⛔ {run}: {labels} — needs you"
    if lead in (Topic.DEADLINE_AHEAD, Topic.COST_AHEAD):
        # what will happen and when: the finding's own words
        ahead = next(f for f in findings if finding_topic(f.key) is lead)
        return f"⏰ {run}: {ahead.reason}"
    if lead is Topic.SOFT:
        return f"⚠ {run}: {labels}"
    return f"⚠ {run} needs you: {labels}"


def recovery_message(run: str, status_line: str, conditions: Sequence[str]) -> OutboundMessage:
    return OutboundMessage(
        kind=MessageKind.RECOVERY,
        title=f"✓ {run}: recovered ({', '.join(finding_label(c) for c in conditions)})",
        run=run,
        status_line=status_line,
        topic=Topic.RECOVERED,
        loud=False,
    )


def episode_findings(
    findings: Sequence[Finding], state: SupervisorState | None, stall_kills: Sequence[int]
) -> tuple[Finding, ...]:
    """Without the second half of an episode already told: the retry that follows a stall kill
    (its message said "attempt killed, retrying")."""
    failure = state.last_failure if state else None
    killed = failure is not None and failure.kind is FailureKind.KILLED
    return tuple(
        f
        for f in findings
        if not (killed and f.key.startswith("attempt:") and _attempt_of(f.key) - 1 in stall_kills)
    )


def _attempt_of(key: str) -> int:
    try:
        return int(key.split(":")[1])
    except (IndexError, ValueError):
        return 0


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
    if kind in tips:
        return tips[kind]
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
