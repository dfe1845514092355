"""Checks that keep failing (issue 11): a check that raises is retried by the scheduler, but a
run whose every check raises is a blind watcher. After `alert_after` failures in a row one
alert says so, with the reason; when a check works again, one recovery message. Pure: the
caller passes `now` and stores the messages.

Used by core.service.Service.check, the scheduler's job, around each Watcher.check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.models import MessageKind, OutboundMessage
from core.text import clean_line
from core.topics import Action, Topic


@dataclass(frozen=True, slots=True)
class Queued:
    message: OutboundMessage
    dedupe_key: str


def describe(exc: BaseException) -> str:
    text = clean_line(str(exc))[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class FailingChecks:
    alert_after: int = 3
    _in_row: dict[str, int] = field(default_factory=dict)
    _since: dict[str, datetime] = field(default_factory=dict)
    _alerted: set[str] = field(default_factory=set)

    def failed(self, run: str, exc: BaseException, now: datetime) -> Queued | None:
        """Count one failure; the alert (once per episode) when the count reaches alert_after."""
        count = self._in_row.get(run, 0) + 1
        self._in_row[run] = count
        since = self._since.setdefault(run, now)
        if count < self.alert_after or run in self._alerted:
            return None
        self._alerted.add(run)
        message = OutboundMessage(
            kind=MessageKind.ALERT,
            title=f"⚠ {run}: the watcher cannot check this run",
            run=run,
            topic=Topic.WATCHER_BLIND,
            loud=True,
            actions=(Action.STATUS,),
            reasons=(
                f"{count} checks in a row failed since {since:%Y-%m-%d %H:%M:%SZ}; "
                f"last: {describe(exc)}",
                "the run is NOT being watched until a check works again",
            ),
        )
        return Queued(message, f"{run}:check-failing:{since.isoformat()}")

    def succeeded(self, run: str, now: datetime) -> Queued | None:
        """A check worked: the episode ends; a recovery message if it had been alerted."""
        self._in_row.pop(run, None)
        since = self._since.pop(run, None)
        if run not in self._alerted or since is None:
            return None
        self._alerted.discard(run)
        message = OutboundMessage(
            kind=MessageKind.RECOVERY,
            title=f"✓ {run}: checks work again",
            run=run,
            topic=Topic.CHECKS_WORK,
            reasons=(f"checks failed from {since:%Y-%m-%d %H:%M:%SZ} to {now:%H:%M:%SZ}",),
        )
        return Queued(message, f"{run}:check-recovered:{since.isoformat()}")
