"""An open `slow` alert's recovery is looked at again within the hold (core/throughput.py
`recovering`, through core.rules.next_check_s): confirmed, the alert closes and a later true
decay is a new episode, told; refuted, it is the same episode. Without it the next reading came
at the cruise tick, 30 minutes on, in a periodic run's next slow phase: the recovery was never
seen to hold and the alert, open for good, hid the decay under it. Pure: data and an injected
`now`, no I/O. The rule's cost gate is off here (HELD_ONLY): these are the recovery's tests."""

from __future__ import annotations

from dataclasses import replace

from core.decide import CheckDecision, CheckPolicy, decide
from core.findings import Thresholds
from core.models import OpenAlert, RunRecord
from core.rules import Assessment, Observation, Policy, next_check_s
from tests.core.builders import HELD_ONLY, RUN, T0, at, keys, run_checks, running

RATE = 2.0  # steps/s: the run's own rate
HOLD_S = Thresholds().soft_hold_s  # a recovery holds this long (10 min) to close the alert
CRUISE_S = 1800.0


def read(minutes: float, share: float) -> Observation:
    return running(at(minutes), throughput=RATE * share, step=int(minutes * 60 * RATE))


def open_alert_then(*later: tuple[float, float]) -> list[Assessment]:
    """Readings every 10 minutes, 40 % of the rate from minute 20 (told at 50, held 30 min),
    one at the rate at 80 (a cruise tick later than the last slow one), then `later`."""
    obs = [read(m, 1.0 if m < 20 else 0.4) for m in range(0, 80, 10)]
    obs += [read(80, 1.0), *(read(m, share) for m, share in later)]
    return run_checks(obs, policy=HELD_ONLY)


def test_an_open_slow_alerts_recovering_reading_is_looked_at_again_within_the_hold() -> None:
    results = open_alert_then()
    assert "slow" in keys(results[5]) and "slow" in keys(results[-1])  # open: one reading back
    assert results[-1].suspect
    assert next_check_s(results[-1], Policy(), at(80)) == HOLD_S  # not the cruise tick
    # a reading under the line in the open alert is no recovery: the cadence's own tick
    assert next_check_s(results[-2], Policy(), at(70)) == CRUISE_S


def test_the_recovery_seen_to_hold_closes_the_alert() -> None:
    closed = open_alert_then((90, 1.0))[-1]
    assert "slow" not in keys(closed) and closed.memory.slow_since is None
    assert not closed.suspect and next_check_s(closed, Policy(), at(90)) == CRUISE_S


def test_a_slow_reading_before_the_recovery_held_is_the_same_episode() -> None:
    refuted = open_alert_then((90, 0.4))[-1]
    (finding,) = [f for f in refuted.findings if f.key == "slow"]
    assert finding.since == at(20) and refuted.memory.slow_since == at(20)
    assert next_check_s(refuted, Policy(), at(90)) == CRUISE_S


def phases_then_decay(minute: float) -> float:
    """40-minute phases at 40 % every 90 minutes from minute 40; from 420 a decay to 30 % of
    the rate over 4 h under them."""
    share = 0.4 if minute >= 40 and (minute - 40) % 90 < 40 else 1.0
    if minute >= 420:
        share = min(share, 1.0 - 0.7 * min(1.0, (minute - 420) / 240))
    return share


def watch(until_min: float) -> list[tuple[float, CheckDecision]]:
    """The watcher's loop, pure: decide each check, commit it, check again when it says."""
    record = replace(
        RunRecord(name=RUN, run_dir="/workspace/runs/x", launched_at=T0, instance_id="4242"),
        status="running",
        attempt=1,
        max_attempts=3,
    )
    open_alerts: dict[str, OpenAlert] = {}
    out: list[tuple[float, CheckDecision]] = []
    minute = 0.0
    while minute <= until_min:
        obs = read(minute, phases_then_decay(minute))
        d = decide(record, obs, None, open_alerts, CheckPolicy(rules=HELD_ONLY), at(minute))
        open_alerts = {k: v for k, v in open_alerts.items() if k not in d.commit.alerts_resolved}
        open_alerts.update({a.condition: a for a in d.commit.alerts_opened})
        out.append((minute, d))
        assert d.interval_s is not None
        record, minute = d.record, minute + d.interval_s / 60
    return out


def test_a_true_decay_after_a_recovered_alert_is_told() -> None:
    checks = watch(900)
    told = [(m, f) for m, d in checks for f in d.told if f.key == "slow"]
    closed = [m for m, d in checks if "slow" in d.commit.alerts_resolved]
    # the first 40-minute phase of a fresh run is told (nothing yet says it is the run's
    # pattern); its phase ended at 80, the first reading back came at 104 (a cruise tick)
    assert told[0][0] < 80 and closed[0] == 104 + HOLD_S / 60  # confirmed 10 minutes later
    # the phases after it are learned, not told; the decay under them is a new episode, told
    assert len(told) == 2 and told[1][1].since is not None
    assert told[1][1].since >= at(420) and told[1][0] <= 420 + 300
    assert checks[-1][1].assessment.memory.slow_since == told[1][1].since  # open to the end
