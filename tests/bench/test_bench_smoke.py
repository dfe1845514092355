"""Each bench runs end to end in its quick mode. Figures are never asserted, only that the
numbers exist and the pieces were really exercised."""

from __future__ import annotations

import pytest

from bench import detection, fleet
from bench.detection_model import make_run
from bench.detection_sim import POLICIES, simulate
from core.rules import Policy


def test_the_same_seed_gives_the_same_fleet():
    first = [make_run(i, 3) for i in range(20)]
    again = [make_run(i, 3) for i in range(20)]
    assert [(r.kind, r.event_s) for r in first] == [(r.kind, r.event_s) for r in again]


def test_a_hang_is_caught_and_killed_by_the_wait_channel_policy():
    index = next(i for i in range(200) if make_run(i, 7).kind == "hang")
    watching = next(w for w in POLICIES if w.name == "adaptive_wait")
    outcome = simulate(make_run(index, 7), watching, Policy())
    assert any(k.startswith("stall_kill:") for k in outcome.alert_keys)
    assert outcome.detected_s is not None


def test_detection_quick_reports_every_policy():
    doc = detection.main(quick=True, runs=40, write=False)
    assert set(doc["policies"]) == {w.name for w in POLICIES}
    assert doc["policies"]["adaptive_wait"]["checks_per_run_day"] > 0
    assert doc["goals"]


@pytest.mark.slow
def test_fleet_quick_checks_over_real_ssh():
    doc = fleet.main(sizes=(4,), quick=True, write=False)
    result = doc["results"][0]
    assert result["checks"]["ops"] > 0 and result["checks"]["errors"] == 0
    assert result["bare"]["ops"] > 0
