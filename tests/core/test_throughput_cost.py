"""The `slow` rule's cost gate (core/throughput.py `sag_after`): a slowdown is news once it has
cost the run `slow_lost_s` (an hour) of its time at its own rate, not after a fixed hold. A
fresh run's slow phase that comes back before then is not told (nothing yet says it is the
run's pattern, and it cost little); a collapse is told when it has cost the hour. Pure: data
and an injected `now`, no I/O."""

from __future__ import annotations

from core.config import ThresholdsConfig
from core.memory import Memory
from core.models import RunRecord
from core.rules import Assessment
from tests.core.builders import HELD_ONLY, T0, at, decide_checks, keys, run_checks, running

RATE = 2.0  # steps/s: the run's own rate


def reads(*points: tuple[float, float | None], attempt: int = 1) -> list[Assessment]:
    """(minute, share of the rate) readings; a share of None: a check with no reading."""
    obs = [
        running(at(m), throughput=None if s is None else RATE * s, attempt=attempt)
        for m, s in points
    ]
    return run_checks(obs)


def every_10(start: float, stop: float, share: float | None) -> list[tuple[float, float | None]]:
    return [(float(m), share) for m in range(int(start), int(stop), 10)]


def told_at(results: list[Assessment], minutes: list[float]) -> list[float]:
    return [m for m, r in zip(minutes, results, strict=True) if "slow" in keys(r)]


def test_a_fresh_runs_slow_phase_that_comes_back_is_not_told() -> None:
    # 40 minutes at 30 % of the rate, read every 10, then back: about 28 minutes lost (24.5
    # counted: the interval to the reading back at the rate is not the sag's)
    points = [*every_10(0, 30, 1.0), *every_10(30, 70, 0.3), *every_10(70, 120, 1.0)]
    results = reads(*points)
    assert not any("slow" in keys(r) for r in results)
    lost = max(r.memory.sag_lost_s for r in results)
    assert lost == 24.5 * 60
    held_only = run_checks(
        [running(at(m), throughput=RATE * s) for m, s in points], policy=HELD_ONLY
    )
    assert any("slow" in keys(r) for r in held_only)  # the hold alone told it


def test_a_collapse_is_told_at_the_check_where_it_has_cost_an_hour() -> None:
    # 30 % from minute 30: the first interval costs 3.5 min (from a reading at the rate), each
    # next one 7: an hour is passed at the tenth slow reading (66.5 min), at minute 120
    points = [*every_10(0, 30, 1.0), *every_10(30, 200, 0.3)]
    results = reads(*points)
    assert told_at(results, [m for m, _ in points])[0] == 120
    assert abs(results[12].memory.sag_lost_s - 66.5 * 60) < 1  # minute 120's check
    assert abs(results[11].memory.sag_lost_s - 59.5 * 60) < 1  # not yet at minute 110


def test_a_gap_with_no_reading_is_costed_from_the_readings_either_side() -> None:
    # 30 % from minute 30; an eval from 60 to 100 gives no reading: the interval 50 -> 100 is
    # costed at 70 % when the next reading comes, not dropped
    points = [*every_10(0, 30, 1.0), *every_10(30, 60, 0.3), *every_10(60, 100, None)]
    points += [(100.0, 0.3), (110.0, 0.3), (120.0, 0.3)]
    results = reads(*points)
    during = [r.memory.sag_lost_s for r in results[6:10]]
    assert during == [during[0]] * 4  # no reading: no news, no cost added
    assert abs(results[10].memory.sag_lost_s - (3.5 + 7 + 7 + 35) * 60) < 1
    assert "slow" not in keys(results[10]) and "slow" not in keys(results[11])  # 59.5 min
    assert "slow" in keys(results[12])  # 66.5 min


def test_a_reading_back_at_the_recovered_line_ends_the_sag() -> None:
    # two 40-minute phases at 30 %, apart: each costs about half an hour, never summed
    points = [*every_10(0, 30, 1.0), *every_10(30, 70, 0.3), *every_10(70, 90, 0.9)]
    points += [*every_10(90, 130, 0.3), *every_10(130, 150, 1.0)]
    results = reads(*points)
    assert results[7].memory.sag_since is None and results[7].memory.sag_lost_s == 0.0
    assert not any("slow" in keys(r) for r in results)
    assert max(r.memory.sag_lost_s for r in results) < 0.6 * 3600


def test_a_new_attempt_starts_a_fresh_sag() -> None:
    first = reads(*every_10(0, 30, 1.0), *every_10(30, 100, 0.3))
    memory = first[-1].memory
    assert memory.sag_lost_s > 45 * 60
    retry = run_checks([running(at(100), throughput=0.6, attempt=2)], memory=memory)[-1]
    assert retry.memory.sag_lost_s == 0.0 and retry.memory.sag_since == at(100)
    assert "slow" not in keys(retry)


def test_a_sag_survives_a_watcher_restart() -> None:
    memory = reads(*every_10(0, 30, 1.0), *every_10(30, 80, 0.3))[-1].memory
    restored = Memory.from_json(memory.to_json())
    assert restored.sag_since == memory.sag_since == at(30)
    assert restored.sag_lost_s == memory.sag_lost_s > 0
    assert (restored.read_at, restored.read_rate) == (at(70), RATE * 0.3)
    assert Memory.from_json({"launched_at": at(0).isoformat()}).sag_lost_s == 0.0  # old rows


def test_the_gate_is_configured_as_slow_lost() -> None:
    assert ThresholdsConfig().thresholds().slow_lost_s == 3600.0
    assert ThresholdsConfig(slow_lost="45m").thresholds().slow_lost_s == 2700.0


def deadline_run(deadline_min: float) -> list[list[str]]:
    """A run at 2 steps/s with 20,000 steps to go (2.8 h at its rate) slows to 40 % from
    minute 20 (6.9 h to go): what each check tells, through the watcher's own `decide`."""
    record = RunRecord(
        name="r", run_dir="/r", launched_at=T0, status="running", deadline_at=at(deadline_min)
    )
    shares = [(0, 1.0), (10, 1.0), (20, 0.4), (30, 0.4), (40, 0.4), (50, 0.4), (60, 0.4)]
    obs = [running(at(m), throughput=RATE * s, total_steps=20_100) for m, s in shares]
    return [[f.reason for f in d.told if f.key == "slow"] for d in decide_checks(obs, record)]


def test_a_slowdown_that_makes_the_run_miss_its_deadline_is_told_at_the_hold() -> None:
    # at 40 % the run ends past its 5-h deadline, at its own rate well before: told once the
    # 30-min hold holds (minute 50), not after the hour's cost (18 min of it so far)
    said = deadline_run(5 * 60)
    assert [i for i, reasons in enumerate(said) if reasons] == [5]
    assert "after its deadline stops it" in said[5][0]
    # a deadline that even this rate makes: the cost gate, as for any run
    assert not any(deadline_run(20 * 60))
    # one it misses even at its own rate: the deadline's news, not the slowdown's
    assert not any(deadline_run(2 * 60))
