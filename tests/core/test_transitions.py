"""Alert transitions: one open alert per condition, timed re-sends, one recovery, mute, terminal."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.models import OpenAlert
from core.rules import Finding
from core.transitions import AlertPlan, plan_alerts
from tests.core.builders import RUN, at

RESEND_S = 4 * 3600.0
DEAD = Finding("supervisor_dead", "no heartbeat for 300s")
LOW_GPU = Finding("low_gpu", "GPU 3%", soft=True)
UNREACHABLE = Finding("unreachable", "unreachable for 2 checks")
RETRY = Finding("attempt:2", "attempt 2/3 started after oom", event=True)


def opened_at(condition: str, when: datetime, sent: datetime | None = None) -> OpenAlert:
    return OpenAlert(RUN, condition, when, sent or when, "")


def plan(
    open_alerts: dict[str, OpenAlert], findings: list[Finding], now: datetime, **kw: Any
) -> AlertPlan:
    return plan_alerts(open_alerts, findings, now, resend_after_s=RESEND_S, **kw)


def test_a_new_condition_opens_one_alert() -> None:
    result = plan({}, [DEAD], at(0))
    assert result.opened == (DEAD,)
    assert result.to_notify == (DEAD,)
    assert result.resolved == ()


def test_an_open_condition_is_not_sent_again_before_the_resend_interval() -> None:
    open_alerts = {"supervisor_dead": opened_at("supervisor_dead", at(0))}
    for minutes in (3, 60, 239):
        result = plan(open_alerts, [DEAD], at(minutes))
        assert result.to_notify == ()
        assert result.resolved == ()


def test_it_is_re_sent_after_the_resend_interval_from_the_last_send() -> None:
    open_alerts = {"supervisor_dead": opened_at("supervisor_dead", at(0), sent=at(240))}
    assert plan(open_alerts, [DEAD], at(479)).resent == ()
    assert plan(open_alerts, [DEAD], at(480)).resent == (DEAD,)


def test_the_default_resend_interval_is_four_hours() -> None:
    from core.rules import Thresholds

    assert Thresholds().resend_after_s == 4 * 3600


def test_recovery_is_announced_once() -> None:
    open_alerts = {"supervisor_dead": opened_at("supervisor_dead", at(0))}
    result = plan(open_alerts, [], at(3))
    assert result.resolved == ("supervisor_dead",)
    assert result.recovered == ("supervisor_dead",)
    # The store closed it: the next healthy check has nothing to resolve.
    assert plan({}, [], at(6)) == AlertPlan()


def test_events_are_always_sent_and_never_opened() -> None:
    result = plan({}, [RETRY, DEAD], at(0))
    assert result.events == (RETRY,)
    assert result.opened == (DEAD,)
    assert result.to_notify == (RETRY, DEAD)


def test_mute_silences_soft_conditions_only() -> None:
    muted = {"muted_until": at(60)}
    result = plan({}, [LOW_GPU, DEAD, RETRY], at(0), **muted)
    assert result.opened == (DEAD,)
    assert result.events == (RETRY,)


def test_a_muted_soft_alert_is_neither_re_sent_nor_resolved() -> None:
    open_alerts = {"low_gpu": opened_at("low_gpu", at(0))}
    muted = {"muted_until": at(24 * 60)}
    assert plan(open_alerts, [LOW_GPU], at(5 * 60), **muted).resent == ()
    assert plan(open_alerts, [], at(5 * 60), **muted).resolved == ()


def test_a_muted_run_still_resolves_hard_conditions() -> None:
    open_alerts = {"supervisor_dead": opened_at("supervisor_dead", at(0))}
    result = plan(open_alerts, [], at(3), muted_until=at(60))
    assert result.recovered == ("supervisor_dead",)


def test_when_the_mute_ends_a_lasting_soft_condition_opens() -> None:
    assert plan({}, [LOW_GPU], at(61), muted_until=at(60)).opened == (LOW_GPU,)
    assert plan({}, [LOW_GPU], at(60), muted_until=at(60)).opened == (LOW_GPU,)


def test_terminal_resolves_everything_silently() -> None:
    open_alerts = {
        "supervisor_dead": opened_at("supervisor_dead", at(0)),
        "low_gpu": opened_at("low_gpu", at(0)),
    }
    result = plan(open_alerts, [DEAD, LOW_GPU], at(3), terminal=True, muted_until=at(60))
    assert set(result.resolved) == {"supervisor_dead", "low_gpu"}
    assert result.recovered == ()
    assert result.opened == result.resent == ()


def test_terminal_still_carries_its_events() -> None:
    final = Finding("deadline_warning:x", "deadline soon", event=True)
    assert plan({}, [final], at(0), terminal=True).events == (final,)


def test_an_unreachable_host_does_not_recover_what_it_cannot_see() -> None:
    open_alerts = {
        "low_gpu": opened_at("low_gpu", at(0)),
        "supervisor_dead": opened_at("supervisor_dead", at(0)),
    }
    result = plan(open_alerts, [UNREACHABLE], at(10))
    assert result.opened == (UNREACHABLE,)
    assert result.resolved == result.recovered == ()


def test_a_check_that_saw_no_state_recovers_nothing_before_it_is_a_condition() -> None:
    open_alerts = {"low_gpu": opened_at("low_gpu", at(0))}
    assert plan(open_alerts, [], at(10), observed=False) == AlertPlan()


def test_an_unreadable_state_does_not_recover_state_conditions() -> None:
    open_alerts = {
        "supervisor_dead": opened_at("supervisor_dead", at(0)),
        "unreachable": opened_at("unreachable", at(0)),
    }
    invalid = Finding("invalid_state", "schema 2")
    result = plan(open_alerts, [invalid], at(10))
    assert result.recovered == ("unreachable",)  # the host answered


def test_conditions_not_read_from_the_state_resolve_while_unreachable() -> None:
    open_alerts = {"deadline": opened_at("deadline", at(0))}
    result = plan(open_alerts, [UNREACHABLE], at(10))
    assert result.recovered == ("deadline",)  # /extend moved it


def test_the_host_coming_back_resolves_unreachable() -> None:
    open_alerts = {"unreachable": opened_at("unreachable", at(0))}
    assert plan(open_alerts, [], at(3)).recovered == ("unreachable",)


def test_at_most_one_open_alert_per_condition() -> None:
    twice = [DEAD, Finding("supervisor_dead", "still dead")]
    assert len(plan({}, twice, at(0)).opened) == 1


def test_resend_counts_from_opening_when_never_sent() -> None:
    alert = OpenAlert(RUN, "supervisor_dead", at(0), None, "")
    assert plan({"supervisor_dead": alert}, [DEAD], at(0) + timedelta(hours=4)).resent == (DEAD,)
