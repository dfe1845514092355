"""Instances left billing after their run ended: reminded every kept_reminder with the money
spent since the end, until destroyed or acknowledged. Pure, an injected `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core.kept import due_reminders, is_kept, reminder_for, reminder_number
from core.models import RunRecord
from tests.core.builders import T0

EVERY_S = 4 * 3600.0
ENDED = T0 + timedelta(hours=10)
KEPT = RunRecord(
    name="llama-ft",
    run_dir="/r",
    launched_at=T0,
    instance_id="4242",
    live=False,
    status="done",
    ended_at=ENDED,
    dph_total=0.5,
)


def test_an_ended_run_with_its_instance_not_destroyed_is_kept() -> None:
    assert is_kept(KEPT)
    assert is_kept(replace(KEPT, live=True, teardown="failed"))  # a destroy that failed
    assert not is_kept(replace(KEPT, teardown="destroyed"))
    assert not is_kept(replace(KEPT, kept_acked_at=ENDED))  # /keep
    assert not is_kept(replace(KEPT, ended_at=None, live=True))  # still running
    assert not is_kept(replace(KEPT, instance_id=None))  # no cloud instance to bill


def test_nothing_before_the_first_period() -> None:
    assert reminder_for(KEPT, ENDED + timedelta(hours=3, minutes=59), EVERY_S) is None


def test_it_reminds_every_period_with_the_money_since_the_end() -> None:
    first = reminder_for(KEPT, ENDED + timedelta(hours=4), EVERY_S)
    assert first is not None
    assert "4242 still billing" in first.message.title
    text = " ".join(first.message.reasons)
    assert "$2.00 since the run ended, at $0.50/h" in text
    assert "kept by policy" in text and "/keep llama-ft" in text and "/teardown" in text
    later = reminder_for(KEPT, ENDED + timedelta(hours=6), EVERY_S)
    assert later is not None and later.dedupe_key == first.dedupe_key  # same period: one message
    second = reminder_for(KEPT, ENDED + timedelta(hours=8), EVERY_S)
    assert second is not None and second.dedupe_key != first.dedupe_key
    assert "$4.00 since the run ended" in " ".join(second.message.reasons)


def test_a_failed_destroy_says_so() -> None:
    failed = replace(KEPT, live=True, teardown="failed")
    reminder = reminder_for(failed, ENDED + timedelta(hours=4), EVERY_S)
    assert reminder is not None and "destroy failed" in " ".join(reminder.message.reasons)


def test_an_instance_kept_for_uncollected_outputs_says_that_not_policy() -> None:
    reminder = reminder_for(KEPT, ENDED + timedelta(hours=4), EVERY_S, uncollected=True)
    assert reminder is not None
    text = " ".join(reminder.message.reasons)
    assert "outputs were not all collected (destroy_when_uncollected = false)" in text
    assert "kept by policy" not in text


def test_a_serve_down_for_a_day_sends_one_reminder_not_six() -> None:
    assert reminder_number(ENDED, ENDED + timedelta(hours=25), EVERY_S) == 6
    reminders = due_reminders([KEPT], ENDED + timedelta(hours=25), EVERY_S)
    assert len(reminders) == 1


def test_acknowledged_or_destroyed_instances_are_not_reminded() -> None:
    now = ENDED + timedelta(hours=9)
    records = [
        replace(KEPT, kept_acked_at=ENDED),
        replace(KEPT, name="b", teardown="destroyed"),
        replace(KEPT, name="c"),
    ]
    assert [r.message.run for r in due_reminders(records, now, EVERY_S)] == ["c"]
