"""Which stored messages go out together, pure: alerts due together that were created within
`coalesce_s` of each other become one message (at most MAX_COMBINED), anything else goes alone;
and how long a failed delivery waits before its next try.

Called by core.outbox.OutboxSender (which re-exports backoff_s and combine_alerts) each time it
drains the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.models import MessageKind, OutboundMessage, OutboxItem
from core.topics import Action, lead_topic

BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
MAX_COMBINED = 10


@dataclass(frozen=True, slots=True)
class Batch:
    """One delivery: the rows it settles and the message that goes out for them."""

    item_ids: tuple[int, ...]
    message: OutboundMessage
    created_at: datetime  # of the first row


def backoff_s(attempts: int) -> float:
    """Wait before retry `attempts + 1` after a transient failure: 2 s doubling, 5 min cap."""
    exponent = min(max(attempts, 0), 16)
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * float(2**exponent))


def _joins(group: list[OutboxItem], item: OutboxItem, coalesce_s: float) -> bool:
    first = group[0]
    return (
        item.message.kind is MessageKind.ALERT
        and first.message.kind is MessageKind.ALERT
        and item.message.chat_id == first.message.chat_id
        and len(group) < MAX_COMBINED
        and abs((item.created_at - first.created_at).total_seconds()) <= coalesce_s
    )


def plan_batches(items: Sequence[OutboxItem], coalesce_s: float) -> list[Batch]:
    """Group due items (in id order) into deliveries. Only neighbours merge, so the order in
    which a human reads things never changes; a group spans at most `coalesce_s`."""
    groups: list[list[OutboxItem]] = []
    for item in items:
        if groups and _joins(groups[-1], item, coalesce_s):
            groups[-1].append(item)
        else:
            groups.append([item])
    return [
        Batch(
            tuple(i.id for i in group),
            combine_alerts([i.message for i in group]),
            group[0].created_at,
        )
        for group in groups
    ]


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def combine_alerts(messages: Sequence[OutboundMessage]) -> OutboundMessage:
    """One message standing for several alerts: each run's latest status line first, then every
    reason (prefixed by its run when several runs are involved), then the log blocks in order."""
    if len(messages) == 1:
        return messages[0]
    runs = _unique([m.run or "" for m in messages])
    several_runs = len(runs) > 1
    latest_line = {m.run or "": m.status_line for m in messages if m.status_line}
    reasons: list[str] = []
    logs: list[str] = []
    for m in messages:
        prefix = f"[{m.run}] " if several_runs and m.run else ""
        reasons.extend(f"{prefix}{r}" for r in (m.reasons or (m.title,)))
        if m.log_lines:
            logs.append(f"--- {m.title} ---")
            logs.extend(m.log_lines)
    topics = [m.topic for m in messages if m.topic is not None]
    return OutboundMessage(
        kind=MessageKind.ALERT,
        title=f"{len(messages)} alerts: " + "; ".join(_unique([m.title for m in messages])),
        topic=lead_topic(topics) if topics else None,
        loud=any(m.loud for m in messages),  # any of them needs a human: all are shown
        actions=_merged_actions(messages) if not several_runs else (),
        run=None if several_runs else messages[0].run,
        status_line="\n".join(line for line in latest_line.values() if line) or None,
        reasons=_unique(reasons),
        log_lines=tuple(logs),
        chat_id=messages[0].chat_id,
    )


def _merged_actions(messages: Sequence[OutboundMessage]) -> tuple[Action, ...]:
    """Every button one of them offers (all for the same run), in the buttons' own order."""
    offered = {a for m in messages for a in m.actions}
    return tuple(a for a in Action if a in offered)
