"""The slow rule's warm-up (core/run_rate.py WARM_UP_S): a sag that began in a run's first half
hour of training and still holds an hour later is the run settling, not a slowdown. Found by
the detection bench's held-out `startup_burst` (the first 10-30 min of training 30-60 % faster:
18.7 % of runs told they were slow for good). Pure: data and an injected `now`, no I/O."""

from __future__ import annotations

from core.memory import Memory
from core.rules import Assessment
from core.run_rate import WARM_UP_S
from tests.core.builders import T0, at, keys, run_checks, running


def reads(points: list[tuple[float, float]]) -> list[Assessment]:
    """A fresh run (its first reading starts the warm-up) read at (minute, steps/s)."""
    return run_checks([running(at(m), throughput=r) for m, r in points])


def told_slow(results: list[Assessment]) -> bool:
    return any("slow" in keys(r) for r in results)


def test_a_run_faster_in_its_first_minutes_is_not_slow_once_it_settles() -> None:
    burst = [(m, 3.0) for m in (0, 2, 5, 13, 20)]
    settled = [(float(m), 2.0) for m in range(30, 480, 10)]
    results = reads([*burst, *settled])
    assert results[10].memory.sag_since == at(30)  # minute 80: a sag since minute 30
    assert results[11].memory.sag_since is None  # minute 90: settled
    assert results[11].memory.baseline_throughput == 2.0
    assert not told_slow(results)
    assert WARM_UP_S == 30 * 60


def test_a_slowdown_after_the_warm_up_is_told() -> None:
    healthy = [(float(m), 2.0) for m in range(0, 40, 10)]
    slowed = [(float(m), 1.0) for m in range(40, 400, 10)]
    results = reads([*healthy, *slowed])
    assert told_slow(results)
    assert results[-1].memory.baseline_throughput == 2.0


def test_a_dip_in_the_warm_up_that_ends_leaves_the_rate() -> None:
    points = [(0.0, 2.0), (10.0, 2.0), (15.0, 0.5), (20.0, 0.5), (25.0, 2.0)]
    points += [(float(m), 2.0) for m in range(30, 120, 10)]
    results = reads(points)
    assert results[-1].memory.baseline_throughput == 2.0
    assert not told_slow(results)


def test_a_slowdown_in_the_warm_up_becomes_the_runs_rate() -> None:
    # the price: a run slow from its tenth minute on has settled, as far as the rule can tell
    results = reads([(0.0, 2.0), (10.0, 2.0), *((float(m), 1.0) for m in range(20, 400, 10))])
    assert not told_slow(results)
    assert results[-1].memory.baseline_throughput == 1.0


def test_the_warm_up_survives_a_watcher_restart() -> None:
    memory = reads([(0.0, 3.0), (10.0, 3.0), (20.0, 2.0), (30.0, 2.0)])[-1].memory
    restored = Memory.from_json(memory.to_json())
    assert restored.rate_from == memory.rate_from == T0
    later = run_checks([running(at(m), throughput=2.0) for m in (40, 60, 90)], memory=restored)
    assert later[-1].memory.baseline_throughput == 2.0 and later[-1].memory.sag_since is None


def test_a_row_stored_before_the_warm_up_keeps_its_established_rate() -> None:
    old = Memory.from_json({"launched_at": T0.isoformat(), "baseline_throughput": 2.0})
    assert old.rate_from is None
    slowed = [running(at(m), throughput=0.6) for m in range(0, 200, 10)]
    assert told_slow(run_checks(slowed, memory=old))
