"""The max_cost cap (a deadline in dollars), the live estimate and low disk: pure rules, an
injected `now`."""

from __future__ import annotations

from datetime import timedelta

from core.cost import (
    CostVerdict,
    cap_at,
    cost_limit,
    estimate,
    judge_cost,
)
from core.disk import judge_disk
from core.vocab import Condition, Event, is_loud
from tests.core.builders import T0, at

DPH = 0.50  # $/h: a $10 limit is reached 20 h after launch
LIMIT = 10.0
CAP = T0 + timedelta(hours=20)


def judge(now_h: float, *, warned: bool = False, limit: float | None = LIMIT) -> CostVerdict:
    return judge_cost(limit, DPH, T0, T0 + timedelta(hours=now_h), warned=warned)


def test_no_max_cost_means_nothing_ever() -> None:
    assert judge(1000, limit=None) == CostVerdict()


def test_the_cap_is_when_the_spend_reaches_the_limit() -> None:
    assert cap_at(T0, LIMIT, DPH) == CAP
    assert judge(1).cap_at == CAP
    assert cap_at(T0, LIMIT, 0.0) is None  # a free instance never reaches it


def test_nothing_until_an_hour_of_spend_before_the_cap() -> None:
    verdict = judge(18.9)
    assert verdict.findings == () and not verdict.warned and not verdict.teardown


def test_it_warns_once_an_hour_of_spend_ahead() -> None:
    first = judge(19.5)
    (finding,) = first.findings
    assert finding.event and first.warned and not first.teardown
    assert finding.key == "cost_warning:10.00" and is_loud(finding.key)
    assert "$9.75 of max_cost $10.00 at $0.50/h" in finding.reason
    assert "in 30m" in finding.reason and "/extend" in finding.reason
    again = judge(19.8, warned=True)
    assert again.findings == () and again.warned and not again.teardown


def test_at_the_cap_it_stops_and_tears_down() -> None:
    verdict = judge(20.0, warned=True)
    assert verdict.teardown
    (finding,) = verdict.findings
    assert finding.key == Condition.COST_CAP and not finding.event and is_loud(finding.key)
    assert "destroying the instance" in finding.reason


def test_a_missed_warning_does_not_hold_back_the_cap() -> None:
    assert judge(25.0, warned=False).teardown


def test_an_extended_limit_moves_the_cap_and_warns_again() -> None:
    # /extend 2h at $0.50/h adds $1: the cap moves two hours, exactly like the deadline
    raised = cost_limit(LIMIT, 2 * DPH)
    assert raised == 11.0
    assert cap_at(T0, raised, DPH) == CAP + timedelta(hours=2)
    assert not judge(20.0, warned=True, limit=raised).teardown
    (warning,) = judge(21.5, warned=False, limit=raised).findings
    assert warning.key == "cost_warning:11.00"  # another key than the first limit's warning


def test_a_limit_without_a_price_is_an_alert_not_a_silent_pass() -> None:
    verdict = judge_cost(LIMIT, None, T0, at(60), warned=False)
    (finding,) = verdict.findings
    assert finding.key == Event.COST_UNKNOWN.key("10.00")
    assert finding.event and not verdict.teardown
    assert "dph_total" in finding.reason


def test_the_estimate_projects_the_spend_to_the_last_step() -> None:
    now = T0 + timedelta(hours=2)
    # 1000 of 10_000 steps at 0.5 steps/s: 18_000 s = 5 h to go at $0.50/h
    est = estimate(DPH, T0, now, step=1000, total_steps=10_000, throughput=0.5)
    assert est.spent_usd == 1.0
    assert est.projected_usd == 3.5
    assert est.finish_at == now + timedelta(hours=5)


def test_the_estimate_without_throughput_or_total_is_the_spend_alone() -> None:
    now = T0 + timedelta(hours=2)
    assert estimate(DPH, T0, now, step=5, total_steps=None, throughput=1.0).projected_usd is None
    assert estimate(DPH, T0, now, step=5, total_steps=9, throughput=None).projected_usd is None
    assert estimate(DPH, T0, now, step=5, total_steps=9, throughput=0.0).projected_usd is None


def test_low_disk_alerts_below_the_threshold_and_clears_above_a_margin() -> None:
    low = judge_disk(3000.0, 10240.0, alerting=False)
    assert low.finding is not None and low.finding.key == Condition.DISK_LOW
    assert is_loud(low.finding.key)  # a person must free space before a checkpoint fails
    assert "2.9 GB" in low.finding.reason and "10.0 GB" in low.finding.reason
    assert judge_disk(11000.0, 10240.0, alerting=False).finding is None
    # open: it stays open just above the line (no flapping at each checkpoint write)...
    assert judge_disk(11000.0, 10240.0, alerting=True).finding is not None
    # ...and clears once the space is clearly back
    assert judge_disk(13000.0, 10240.0, alerting=True).finding is None


def test_no_disk_reading_is_no_news_and_zero_turns_it_off() -> None:
    assert judge_disk(None, 10240.0, alerting=True).unjudged
    assert judge_disk(None, 10240.0, alerting=True).finding is None
    assert judge_disk(1.0, 0.0, alerting=False).finding is None


def test_a_live_run_row_is_projected_from_its_newest_check() -> None:
    from dataclasses import replace

    from core.cost import projected_usd
    from core.memory import Memory, Sample
    from core.models import RunRecord

    samples = (
        Sample(at=T0, reachable=True, step=10, total_steps=10_000, throughput=9.0),
        Sample(at=T0, reachable=True, step=1000, total_steps=10_000, throughput=0.5),
        Sample(at=T0, reachable=False),  # unreachable since: the newest step still counts
    )
    memory = Memory(launched_at=T0, samples=samples).to_json()
    record = RunRecord(name="r", run_dir="/r", launched_at=T0, dph_total=DPH, memory=memory)
    now = T0 + timedelta(hours=2)
    assert projected_usd(record, now) == 3.5  # $1 so far + 9000 steps at 0.5/s (5 h) at $0.50
    assert projected_usd(replace(record, live=False), now) is None
    assert projected_usd(replace(record, dph_total=None), now) is None
    assert projected_usd(replace(record, memory={}), now) is None
