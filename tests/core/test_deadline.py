"""The run's deadline: one warning an hour before, an alert at it, teardown after the grace."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from core.deadline import DeadlineVerdict, judge_deadline
from tests.core.builders import at

GRACE_S = 900.0
DEADLINE = at(600)  # 10 h after T0


def judge(
    now: datetime, *, warned: bool = False, deadline: datetime | None = DEADLINE
) -> DeadlineVerdict:
    return judge_deadline(deadline, now, warned=warned, grace_s=GRACE_S)


def test_no_deadline_means_nothing_ever() -> None:
    verdict = judge(at(10_000), deadline=None)
    assert verdict.findings == ()
    assert not verdict.teardown


def test_nothing_until_an_hour_before() -> None:
    verdict = judge(DEADLINE - timedelta(minutes=61))
    assert verdict.findings == ()
    assert not verdict.warned


def test_it_warns_once_an_hour_before() -> None:
    first = judge(DEADLINE - timedelta(minutes=59))
    (finding,) = first.findings
    assert finding.event
    assert finding.key == "deadline_warning:2026-11-28T13:00Z"
    assert "59m" in finding.reason and "15m" in finding.reason and "/extend" in finding.reason
    assert first.warned
    again = judge(DEADLINE - timedelta(minutes=30), warned=first.warned)
    assert again.findings == ()
    assert again.warned


def test_at_the_deadline_it_alerts_and_counts_down_the_grace() -> None:
    verdict = judge(DEADLINE, warned=True)
    (finding,) = verdict.findings
    assert finding.key == "deadline"
    assert not finding.event  # a lasting condition, until extended or torn down
    assert "teardown in 15m" in finding.reason
    assert not verdict.teardown
    assert not judge(DEADLINE + timedelta(minutes=14, seconds=59), warned=True).teardown


def test_teardown_once_the_grace_has_passed() -> None:
    verdict = judge(DEADLINE + timedelta(minutes=15), warned=True)
    assert verdict.teardown
    assert "tearing down" in verdict.findings[0].reason


def test_a_missed_warning_does_not_hold_back_the_deadline() -> None:
    assert judge(DEADLINE + timedelta(hours=1), warned=False).teardown


def test_an_extended_deadline_means_no_teardown_and_a_fresh_warning_later() -> None:
    extended = DEADLINE + timedelta(hours=2)
    now = DEADLINE + timedelta(minutes=20)
    verdict = judge(now, warned=True, deadline=extended)
    assert not verdict.teardown
    assert verdict.findings == ()
    assert not verdict.warned  # so the new deadline warns again an hour before it
    later = judge(extended - timedelta(minutes=30), warned=verdict.warned, deadline=extended)
    assert [f.key for f in later.findings] == ["deadline_warning:2026-11-28T15:00Z"]


def test_a_zero_grace_tears_down_at_the_deadline() -> None:
    assert judge_deadline(DEADLINE, DEADLINE, warned=True, grace_s=0).teardown


def test_the_stamp_is_utc_whatever_zone_the_deadline_carries() -> None:
    tokyo = timezone(timedelta(hours=9))
    deadline = DEADLINE.astimezone(tokyo)
    verdict = judge(DEADLINE - timedelta(minutes=10), deadline=deadline)
    assert verdict.findings[0].key == "deadline_warning:2026-11-28T13:00Z"
