"""The `slow` rule learns the run's own dips (core/throughput.py): a run whose rate regularly
dips and comes back is not told of a dip like those again, a true decay after them still is
(later, by a known amount), and a run with no recovered dip is judged as before. Pure: data
and an injected `now`, no I/O. The rule's cost gate is off here (HELD_ONLY): these are the
dips' tests; tests/core/test_throughput_cost.py tests the gate."""

from __future__ import annotations

from core import throughput
from core.findings import Thresholds
from core.memory import MAX_DIPS, Memory
from core.rules import Assessment, Observation
from tests.core.builders import HELD_ONLY, T0, at, keys, run_checks, running

RATE = 2.0  # steps/s: the run's own rate
DIPS = [(60, 100), (150, 190), (240, 280), (330, 370)]  # 40-minute phases at 40 %, every 90 min


def read(minutes: float, rate: float | None) -> Observation:
    return running(at(minutes), throughput=rate, step=int(minutes * 60 * RATE))


def rate_at(minute: float, dips: list[tuple[int, int]], decay_at: float | None) -> float:
    """The run's rate, 40 % of it inside a dip; from `decay_at` down to 30 % over 4 h."""
    share = 0.4 if any(a <= minute < b for a, b in dips) else 1.0
    if decay_at is not None and minute >= decay_at:
        share = min(share, 1.0 - 0.7 * min(1.0, (minute - decay_at) / 240))
    return RATE * share


def checks(
    until: int, dips: list[tuple[int, int]], decay_at: float | None = None
) -> tuple[list[Observation], list[Assessment]]:
    """A reading every 10 minutes until `until`, through the rules as the watcher threads them."""
    obs = [read(m, rate_at(m, dips, decay_at)) for m in range(0, until + 1, 10)]
    return obs, run_checks(obs, policy=HELD_ONLY)


def slow_at(obs: list[Observation], results: list[Assessment]) -> list[float]:
    """Minutes of the checks whose verdict holds the slow finding."""
    return [
        (o.at - T0).total_seconds() / 60
        for o, r in zip(obs, results, strict=True)
        if "slow" in keys(r)
    ]


def test_a_run_whose_dips_came_back_is_not_told_of_a_dip_as_long_again() -> None:
    obs, results = checks(400, DIPS)
    # the first 40-minute dip is told (nothing yet says it is the run's pattern), and ends
    # when the rate holds near its own again; the three dips after it, as long, are not told
    assert slow_at(obs, results) == [90, 100]
    learned = results[-1].memory.dips_s
    # each dip may have lasted from the reading before its first slow one to the first back
    assert learned == (3000.0, 3000.0, 3000.0, 3000.0)
    assert throughput.learned_hold_s(results[-1].memory, Thresholds()) == 1.25 * 3000


def test_a_dip_longer_than_the_run_ever_recovered_from_is_told() -> None:
    # after the four 40-minute phases, one of 80 minutes: told once it outlasts 1.25 x 50 min
    obs, results = checks(560, [*DIPS, (420, 500)])
    assert slow_at(obs, results)[2:] == [490, 500]  # 420 + 62.5 min, at the next reading


def test_a_true_decay_after_such_dips_is_still_told_40_minutes_later() -> None:
    fresh_obs, fresh = checks(900, [], decay_at=420)
    dips_obs, dipped = checks(900, DIPS, decay_at=420)
    # the decay crosses 70 % at 522.9 min: first reading under the line at 530
    fresh_told = slow_at(fresh_obs, fresh)[0]
    dips_told = slow_at(dips_obs, dipped)[2]  # after the first dip's episode (90, 100)
    assert fresh_told == 530 + 30  # the plain hold
    assert dips_told == 530 + 70  # 62.5 min (1.25 x its 50-minute dips), at the next reading
    (finding,) = [f for f in dipped[-1].findings if f.key == "slow"]
    assert "(its slow phases so far came back within 50m)" in finding.reason
    assert slow_at(dips_obs, dipped)[-1] == 900  # one episode to the end: never dropped


def test_a_fresh_run_with_no_history_is_judged_as_before() -> None:
    # a 35-minute dip read every 5 minutes: told 30 minutes after its first reading
    obs = [read(m, RATE * (0.4 if 20 <= m < 55 else 1.0)) for m in range(0, 80, 5)]
    results = run_checks(obs, policy=HELD_ONLY)
    assert slow_at(obs, results)[0] == 50
    assert throughput.learned_hold_s(results[10].memory, Thresholds()) == 1800
    (finding,) = [f for f in results[10].findings if f.key == "slow"]
    assert "slow phases" not in finding.reason
    assert results[-1].memory.dips_s == (2400.0,)  # 15..55: learned once it came back


def test_a_learned_hold_is_bounded() -> None:
    memory = Memory(launched_at=T0, dips_s=(5 * 3600.0,))  # once slow for five hours
    assert throughput.learned_hold_s(memory, Thresholds()) == 4 * 1800


def test_a_new_attempt_drops_an_open_dip_and_no_reading_keeps_it() -> None:
    obs = [read(0, RATE), read(10, RATE), read(20, 0.5), read(30, None)]
    memory = run_checks(obs, policy=HELD_ONLY)[-1].memory
    assert (memory.dip_since, memory.dip_after) == (at(20), at(10))  # no reading: kept
    retry = running(at(40), attempt=2, throughput=RATE)
    after = run_checks([retry], memory=memory, policy=HELD_ONLY)[-1].memory
    assert after.dip_since is None and after.dips_s == ()  # another attempt's: not learned


def test_the_learned_dips_survive_a_restart_and_old_rows_still_load() -> None:
    memory = checks(400, DIPS)[1][-1].memory
    again = Memory.from_json(memory.to_json())
    assert again.dips_s == memory.dips_s and again.dip_since == memory.dip_since
    old = memory.to_json()
    for key in ("dip_since", "dip_after", "dips_s"):
        del old[key]  # a row stored before the dips were followed
    loaded = Memory.from_json(old)
    assert loaded.dips_s == () and loaded.dip_since is None and loaded.dip_after is None
    long = {**memory.to_json(), "dips_s": [60.0] * (MAX_DIPS + 3)}
    assert len(Memory.from_json(long).dips_s) == MAX_DIPS
