"""The `slow` rule learns what the run's own sags cost (core/slowdown_cost.py): a run whose rate
regularly sags and comes back is not told of a sag that costs as much again, a longer one and a
true decay after them still are (later, by a known amount), and a run with no recovered sag is
judged on the plain hour. Pure: data and an injected `now`, no I/O."""

from __future__ import annotations

from core.findings import Thresholds
from core.memory import MAX_DIPS, Memory
from core.rules import Assessment, Observation
from core.slowdown_cost import learned_lost_s
from tests.core.builders import T0, at, keys, run_checks, running

RATE = 2.0  # steps/s: the run's own rate
# 100-minute phases at 30 % of the rate: each costs 66.5 min by its last reading, and the most
# it may have cost is 73.5 (to the reading back at the rate, at the last one's shortfall)
PHASES = [(60, 160), (250, 350)]
LEARNED_S = 1.25 * 73.5 * 60


def read(minutes: float, rate: float | None, attempt: int = 1) -> Observation:
    return running(at(minutes), throughput=rate, step=int(minutes * 60 * RATE), attempt=attempt)


def rate_at(minute: float, phases: list[tuple[int, int]], decay_at: float | None) -> float:
    """The run's rate, 30 % of it inside a phase; from `decay_at` down to 30 % over 4 h."""
    share = 0.3 if any(a <= minute < b for a, b in phases) else 1.0
    if decay_at is not None and minute >= decay_at:
        share = min(share, 1.0 - 0.7 * min(1.0, (minute - decay_at) / 240))
    return RATE * share


def checks(
    until: int, phases: list[tuple[int, int]], decay_at: float | None = None
) -> tuple[list[Observation], list[Assessment]]:
    """A reading every 10 minutes until `until`, through the rules as the watcher threads them."""
    obs = [read(m, rate_at(m, phases, decay_at)) for m in range(0, until + 1, 10)]
    return obs, run_checks(obs)


def slow_at(obs: list[Observation], results: list[Assessment]) -> list[float]:
    """Minutes of the checks whose verdict holds the slow finding."""
    return [
        (o.at - T0).total_seconds() / 60
        for o, r in zip(obs, results, strict=True)
        if "slow" in keys(r)
    ]


def test_a_runs_first_costly_phase_is_told_and_one_costing_as_much_again_is_not() -> None:
    obs, results = checks(400, PHASES)
    # the first phase passes the hour at its tenth reading (nothing yet says it is the run's
    # pattern); the episode ends when the rate holds near its own again (160, 170); the second,
    # as costly, is not told
    assert slow_at(obs, results) == [150, 160]
    assert results[-1].memory.sags_lost_s == (73.5 * 60, 73.5 * 60)
    assert learned_lost_s(results[-1].memory, Thresholds()) == LEARNED_S


def test_a_phase_costlier_than_any_the_run_came_back_from_is_told() -> None:
    # a third phase of 160 minutes: told once it has cost 1.25 x 73.5 min (its 14th reading)
    obs, results = checks(700, [*PHASES, (440, 600)])
    assert slow_at(obs, results)[2:4] == [570, 580]


def test_a_true_decay_after_such_phases_is_still_told_later_by_a_known_amount() -> None:
    fresh_obs, fresh = checks(900, [], decay_at=420)
    phased_obs, phased = checks(900, PHASES, decay_at=420)
    fresh_told = slow_at(fresh_obs, fresh)[0]
    phased_told = slow_at(phased_obs, phased)[2]  # after the first phase's episode
    lost = [r.memory.sag_lost_s for r in fresh]
    assert lost[fresh_obs.index(next(o for o in fresh_obs if o.at == at(fresh_told)))] >= 3600
    assert fresh_told < phased_told < 900
    told_lost = phased[[o.at for o in phased_obs].index(at(phased_told))].memory.sag_lost_s
    assert LEARNED_S <= told_lost < LEARNED_S + 10 * 60  # the first reading past the learned
    (finding,) = [f for f in phased[-1].findings if f.key == "slow"]
    assert "(its slow phases so far came back within" in finding.reason
    assert slow_at(phased_obs, phased)[-1] == 900  # one episode to the end: never dropped


def test_a_learned_cost_is_bounded() -> None:
    memory = Memory(launched_at=T0, sags_lost_s=(5 * 3600.0,))  # once lost five hours
    assert learned_lost_s(memory, Thresholds()) == 4 * 3600
    assert learned_lost_s(Memory(launched_at=T0), Thresholds()) == 3600  # none: the hour


def test_a_new_attempt_drops_an_open_sag_and_dip_and_no_reading_keeps_them() -> None:
    obs = [read(0, RATE), read(10, RATE), read(20, 0.5), read(30, None)]
    memory = run_checks(obs)[-1].memory
    assert (memory.dip_since, memory.dip_after) == (at(20), at(10))  # no reading: kept
    assert memory.sag_since == at(20) and memory.sag_lost_s > 0
    after = run_checks([read(40, RATE, attempt=2)], memory=memory)[-1].memory
    assert after.dip_since is None and after.dips_s == ()  # another attempt's: not learned
    assert after.sag_since is None and after.sags_lost_s == ()


def test_the_learned_sags_survive_a_restart_and_old_rows_still_load() -> None:
    memory = checks(400, PHASES)[1][-1].memory
    again = Memory.from_json(memory.to_json())
    assert again.sags_lost_s == memory.sags_lost_s and again.dips_s == memory.dips_s
    old = memory.to_json()
    for key in ("dip_since", "dip_after", "dips_s", "sags_lost_s"):
        del old[key]  # a row stored before the dips and sags were followed
    loaded = Memory.from_json(old)
    assert loaded.dips_s == () and loaded.sags_lost_s == () and loaded.dip_since is None
    long = {**memory.to_json(), "sags_lost_s": [60.0] * (MAX_DIPS + 3)}
    assert len(Memory.from_json(long).sags_lost_s) == MAX_DIPS
