"""Pure builders of what a human reads during a run: alerts (headline, reasons, log context),
recoveries, and the findings of one episode. The end of a run in words (terminal messages,
summaries, advice) is core.endings, whose names are re-exported here.

Called by core.decide (alerts and recoveries of a check), core.exits (the terminal summary) and
core.control (/status); rendered by the notifier (bot/render.py, core/console.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.endings import ENDED_SHORT_ADVICE as ENDED_SHORT_ADVICE
from core.endings import SAFE_NAME as _SAFE_NAME
from core.endings import advice as advice
from core.endings import cost_usd as cost_usd
from core.endings import ending_message as ending_message
from core.endings import ending_status_line as ending_status_line
from core.endings import exception_line as exception_line
from core.endings import exception_name
from core.endings import last_metric_line as last_metric_line
from core.endings import root_cause as root_cause
from core.endings import summary_pairs as summary_pairs
from core.endings import terminal_message as terminal_message
from core.endings import terminal_topic as terminal_topic
from core.endings import with_instance_line as with_instance_line
from core.models import MessageKind, OutboundMessage
from core.protocol import FailureKind, ProbeSnapshot, SupervisorState
from core.rules import ERROR_MARKERS, Finding
from core.text import capped_line, capped_lines
from core.topics import RunFacts, Topic, actions_for, finding_topic, lead_topic
from core.vocab import is_loud, label

MAX_CONTEXT_LINES = 80
NO_FACTS = RunFacts()


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
