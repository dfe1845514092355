"""Alert on transitions, not on states: a pure diff of the open alerts and this check's findings.

At most one open alert per (run, condition). A lasting condition is re-sent only after
`resend_after_s` (one told once per episode, core.vocab.TOLD_ONCE, never); it closes with one
recovery message. Mute silences soft conditions (neither
opened, re-sent nor closed while muted). A terminal state closes everything silently: its own
message says what matters.

Called by core.decide (plan_alerts); the rows it plans go into the check's one commit.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.models import OpenAlert
from core.rules import Finding

# Which conditions are soft, need a state, or leave the watcher blind: core.vocab's traits.
from core.vocab import BLIND_CONDITIONS, NEEDS_STATE, SOFT_CONDITIONS, TOLD_ONCE


@dataclass(frozen=True, slots=True)
class AlertPlan:
    opened: tuple[Finding, ...] = ()
    resent: tuple[Finding, ...] = ()
    resolved: tuple[str, ...] = ()
    recovered: tuple[str, ...] = ()  # the resolved ones worth a recovery message
    events: tuple[Finding, ...] = ()

    @property
    def to_notify(self) -> tuple[Finding, ...]:
        return (*self.events, *self.opened, *self.resent)


def is_muted(muted_until: datetime | None, now: datetime) -> bool:
    return muted_until is not None and now < muted_until


def plan_alerts(
    open_alerts: Mapping[str, OpenAlert],
    findings: Sequence[Finding],
    now: datetime,
    *,
    resend_after_s: float,
    muted_until: datetime | None = None,
    terminal: bool = False,
    observed: bool = True,
    unjudged: Collection[str] = (),
) -> AlertPlan:
    """`observed` is False when this check saw no state (host unreachable, state unreadable)
    even before that became a condition of its own."""
    muted = is_muted(muted_until, now)
    events = tuple(f for f in findings if f.event)
    active = {f.key: f for f in findings if not f.event}
    blind = not observed or not BLIND_CONDITIONS.isdisjoint(active)
    if terminal:
        return AlertPlan(resolved=tuple(open_alerts), events=events)
    opened: list[Finding] = []
    resent: list[Finding] = []
    for key, finding in active.items():
        silenced = finding.soft and muted
        existing = open_alerts.get(key)
        if existing is None:
            if not silenced:
                opened.append(finding)
            continue
        last = existing.last_sent_at or existing.opened_at
        repeats = key not in TOLD_ONCE
        if repeats and not silenced and (now - last).total_seconds() >= resend_after_s:
            resent.append(finding)
    resolved = [
        key
        for key in open_alerts
        if key not in active
        and not (muted and key in SOFT_CONDITIONS)
        and not (blind and key in NEEDS_STATE)
        and key not in unjudged
    ]
    return AlertPlan(
        opened=tuple(opened),
        resent=tuple(resent),
        resolved=tuple(resolved),
        recovered=tuple(resolved),
        events=events,
    )
