"""Instances left billing after their run ended, pure: which they are, and when to remind.

An ended run whose instance was kept by policy (`destroy_on_* = false`), kept because its outputs
were not all collected (`destroy_when_uncollected = false`) or whose destroy failed still costs
money every hour. Every `kept_reminder` after the run ended, one reminder says so
with the money spent since the end, until the instance is destroyed (/teardown) or the person
acknowledges it (/keep RUN). The reminder's number is its dedupe key in the outbox, so a restart
neither repeats nor loses one, and a serve that was down for a day sends one, not six.
Called by core/service.py at each of its beats (`due_reminders`); core/control.py uses
`is_kept` to list kept instances first in /runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from core.cost import spent_usd
from core.durations import format_duration
from core.models import MessageKind, OutboundMessage, RunRecord
from core.topics import Action, Topic
from core.vocab import TeardownState


def is_kept(record: RunRecord) -> bool:
    """Ended, with a cloud instance that was not destroyed, and not acknowledged."""
    return (
        record.ended_at is not None
        and record.instance_id is not None
        and record.teardown != TeardownState.DESTROYED
        and record.kept_acked_at is None
    )


@dataclass(frozen=True, slots=True)
class Reminder:
    dedupe_key: str
    message: OutboundMessage


def reminder_number(ended_at: datetime, now: datetime, every_s: float) -> int:
    """How many reminder periods have passed since the end (0: none due yet)."""
    if every_s <= 0:
        return 0
    return max(0, int((now - ended_at).total_seconds() // every_s))


def kept_because(record: RunRecord, *, uncollected: bool) -> str:
    """Why the instance is still there, as the reminder says it. `uncollected`: its outputs
    were not all collected and destroy_when_uncollected = false kept it (the collection's
    memo says so: core.collect_report.kept_uncollected)."""
    if record.teardown == TeardownState.FAILED:
        return "its destroy failed (sleepwatch keeps retrying it)"
    if uncollected:
        return (
            "it was kept because its outputs were not all collected "
            "(destroy_when_uncollected = false)"
        )
    return "it was kept by policy (destroy_on_done / destroy_on_fail = false)"


def reminder_for(
    record: RunRecord, now: datetime, every_s: float, *, uncollected: bool = False
) -> Reminder | None:
    if not is_kept(record) or record.ended_at is None:
        return None
    number = reminder_number(record.ended_at, now, every_s)
    if number == 0:
        return None
    since_s = (now - record.ended_at).total_seconds()
    why = kept_because(record, uncollected=uncollected)
    if record.dph_total is None:
        money = "at an unknown hourly price"
    else:
        spent = spent_usd(record.dph_total, record.ended_at, now)
        money = f"${spent:.2f} since the run ended, at ${record.dph_total:.2f}/h"
    message = OutboundMessage(
        kind=MessageKind.ALERT,
        title=f"{record.name}: instance {record.instance_id} still billing",
        run=record.name,
        topic=Topic.STILL_BILLING,
        loud=True,
        actions=(Action.TEARDOWN, Action.STATUS),
        reasons=(
            f"the run ended {format_duration(since_s)} ago ({record.status}); {why}",
            money,
            f"/teardown {record.name} destroys it; /keep {record.name} keeps it and stops "
            "these reminders",
        ),
    )
    key = f"{record.name}:kept:{record.launched_at.isoformat()}:{number}"
    return Reminder(key, message)


def due_reminders(records: Iterable[RunRecord], now: datetime, every_s: float) -> list[Reminder]:
    return [r for r in (reminder_for(rec, now, every_s) for rec in records) if r is not None]
