"""Cadence: early ramp, cruise, alert mode, scale, deadline clamp. Pure, with an injected now."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.cadence import Cadence, CadencePolicy, Phase, advance, next_interval
from tests.core.builders import T0

POLICY = CadencePolicy()


def step(cadence: Cadence, policy: CadencePolicy = POLICY, **outcome: bool) -> Cadence:
    flags = {"alerting": False, "terminal": False, "new_attempt": False, **outcome}
    return advance(cadence, policy, **flags)


def intervals(checks: list[dict[str, bool]], policy: CadencePolicy = POLICY) -> list[float | None]:
    """The interval before the first check, then the one after each check."""
    cadence = Cadence()
    out = [next_interval(cadence, policy, T0)]
    for outcome in checks:
        cadence = step(cadence, policy, **outcome)
        out.append(next_interval(cadence, policy, T0))
    return out


def test_after_launch_it_ramps_1_2_4_8_minutes_then_cruises_every_30() -> None:
    assert intervals([{}] * 6) == [60, 120, 240, 480, 1800, 1800, 1800]


def test_a_new_attempt_restarts_the_early_ramp() -> None:
    healthy = [{}] * 5
    got = intervals([*healthy, {"new_attempt": True}, {}, {}, {}, {}])
    assert got[5:] == [1800, 60, 120, 240, 480, 1800]


def test_alert_mode_checks_every_3_minutes_until_healthy_twice() -> None:
    got = intervals([{}] * 5 + [{"alerting": True}, {"alerting": True}, {}, {}])
    assert got[6:8] == [180, 180]
    assert got[8] == 180  # one healthy check is not enough
    assert got[9] == 60  # two healthy checks: back to the early ramp, then cruise


def test_an_alert_during_the_calming_checks_resets_the_count() -> None:
    cadence = step(Cadence(), alerting=True)
    cadence = step(cadence)
    cadence = step(cadence, alerting=True)
    cadence = step(cadence)
    assert cadence.phase is Phase.ALERT
    assert step(cadence).phase is Phase.EARLY


def test_a_terminal_run_needs_no_more_checks() -> None:
    cadence = step(Cadence(), terminal=True, alerting=True, new_attempt=True)
    assert cadence.phase is Phase.TERMINAL
    assert next_interval(cadence, POLICY, T0) is None
    assert next_interval(cadence, POLICY, T0, deadline_at=T0 + timedelta(seconds=5)) is None


def test_scale_runs_the_same_policy_faster() -> None:
    fast = CadencePolicy(scale=0.01)
    assert intervals([{}] * 5, fast) == [0.6, 1.2, 2.4, 4.8, 18.0, 18.0]
    assert next_interval(Cadence(phase=Phase.ALERT), fast, T0) == 1.8


def test_interval_never_drops_under_the_floor() -> None:
    policy = CadencePolicy(early_s=(0.0,), min_interval_s=1.0)
    assert next_interval(Cadence(), policy, T0) == 1.0


def test_it_never_sleeps_past_the_deadline() -> None:
    cruise = Cadence(phase=Phase.CRUISE)
    deadline = T0 + timedelta(minutes=7)
    assert next_interval(cruise, POLICY, T0, deadline_at=deadline) == 420
    far = T0 + timedelta(hours=5)
    assert next_interval(cruise, POLICY, T0, deadline_at=far) == 1800


def test_past_the_deadline_it_checks_at_least_at_the_alert_pace() -> None:
    # The grace before teardown (15 min by default) must not wait for a 30 minute tick.
    cruise = Cadence(phase=Phase.CRUISE)
    passed = T0 - timedelta(minutes=1)
    assert next_interval(cruise, POLICY, T0, deadline_at=passed) == 180
    early = Cadence(phase=Phase.EARLY, early_index=0)
    assert next_interval(early, POLICY, T0, deadline_at=passed) == 60


def test_custom_ramp_lengths_are_respected() -> None:
    policy = CadencePolicy(early_s=(10.0, 20.0), cruise_s=100.0)
    assert intervals([{}] * 3, policy) == [10, 20, 100, 100]


@given(
    st.lists(
        st.fixed_dictionaries(
            {"alerting": st.booleans(), "terminal": st.just(False), "new_attempt": st.booleans()}
        ),
        max_size=30,
    ),
    st.floats(min_value=0.001, max_value=10),
)
def test_a_live_run_always_has_a_next_check_within_the_policy(
    outcomes: list[dict[str, bool]], scale: float
) -> None:
    policy = CadencePolicy(scale=scale)
    cadence = Cadence()
    for outcome in outcomes:
        cadence = advance(cadence, policy, **outcome)
        interval = next_interval(cadence, policy, T0)
        assert interval is not None
        assert policy.min_interval_s * scale <= interval <= policy.cruise_s * scale
        if outcome["alerting"]:
            assert interval == policy.scaled(policy.alert_s)
