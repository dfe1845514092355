"""The `low_gpu` rule's episode (core/soft_rules.py): once told, a low GPU stays one episode
until the GPU holds busy, however far apart the calm cadence reads it; a GPU idling while the
run's rate sagged is the `slow` rule's to judge by its cost; a steady episode is told once.
Found by the detection bench's held-out `input_bound` family (told "recovered" and told again
about every hour, 26 messages a run-day) and `deep_short_phases` (52.7 % of runs alerted on
slow phases that came back). Pure: data and an injected `now`, no I/O."""

from __future__ import annotations

from core.memory import Memory
from core.models import OpenAlert
from core.rules import Assessment, Observation, Policy, next_check_s
from core.transitions import plan_alerts
from core.vocab import TOLD_ONCE, Condition
from tests.core.builders import at, keys, run_checks, running, tree

RATE = 2.0


def read(minute: float, util: float, share: float = 1.0) -> Observation:
    return running(at(minute), util_pct=util, throughput=RATE * share)


def in_eval(minute: float, began: float, util: float = 88) -> Observation:
    """A reading `minute - began` minutes into an eval: the trainer silent since it began, its
    tree busy (the eval's dataloader), the GPU busy."""
    return running(
        at(minute), util_pct=util, throughput=RATE, output_at=at(began), **tree(at(minute))
    )


# a GPU read low four times over the 10-min hold (ONSET_READINGS): told at 20, low since 10
TOLD = [read(0, 90), read(10, 5), read(13, 5), read(16, 5), read(20, 5)]


def low_since(result: Assessment) -> object:
    found = [f for f in result.findings if f.key == Condition.LOW_GPU]
    return found[0].since if found else None


def test_a_steady_low_gpu_read_a_cruise_interval_apart_stays_one_episode() -> None:
    obs = [*TOLD, *(read(m, 5) for m in (50, 80, 110, 140))]  # then 30 minutes apart
    results = run_checks(obs)
    assert "low_gpu" not in keys(results[3]) and low_since(results[4]) == at(10)
    assert [low_since(r) for r in results[5:]] == [at(10)] * 4


def test_an_evals_busy_minutes_do_not_end_it_and_a_held_busy_gpu_does() -> None:
    results = run_checks([*TOLD, read(50, 85), read(80, 5)])
    assert low_since(results[5]) == at(10)  # one busy reading (an eval): still open
    assert low_since(results[6]) == at(10)
    busy = [read(m, u) for m, u in ((110, 90), (113, 92), (116, 91), (120, 92))]
    back = run_checks(busy, memory=results[-1].memory)
    # busy three times: not yet held (a starved GPU's chance busy reads end nothing)
    assert [low_since(r) for r in back[:3]] == [at(10)] * 3
    assert "low_gpu" not in keys(back[3]) and back[3].memory.low_gpu_since is None


def test_a_gpu_idling_while_the_rate_sagged_is_the_slow_rules() -> None:
    start = [read(0, 90), read(10, 92)]  # the run's own rate: the baseline
    sagged = run_checks([*start, *(read(m, 5, share=0.2) for m in (20, 30, 40, 50))])
    assert not any("low_gpu" in keys(r) for r in sagged)
    at_rate = run_checks([*start, *(read(m, 5) for m in (20, 30, 40, 50))])
    assert "low_gpu" in keys(at_rate[-1])  # an idle GPU at the run's own rate is low_gpu's
    # idle at the rate for 5 minutes, then the rate sags too: not told on the earlier readings
    turned = run_checks([*start, read(20, 5), read(25, 5), read(35, 5, share=0.2)])
    assert "low_gpu" not in keys(turned[-1])


def test_a_steady_low_gpu_episode_is_told_once() -> None:
    assert Condition.LOW_GPU in TOLD_ONCE
    result = run_checks(TOLD)[-1]
    opened = {"low_gpu": OpenAlert("r", "low_gpu", at(20), at(20), "low GPU")}
    later = plan_alerts(opened, result.findings, at(20 + 5 * 60), resend_after_s=4 * 3600)
    assert later.resent == () and later.resolved == ()


def test_the_episode_survives_a_restart() -> None:
    memory = run_checks(TOLD)[-1].memory
    assert Memory.from_json(memory.to_json()).low_gpu_since == at(10)


def test_a_busy_reading_in_an_open_episode_is_looked_at_again_within_the_hold() -> None:
    # a run that evaluates every 30 minutes: the calm cadence kept landing in its evals, and
    # two busy readings half an hour apart read as a GPU back (closed, and opened again)
    results = run_checks([*TOLD, read(50, 85)])
    assert results[-1].suspect and low_since(results[-1]) == at(10)
    assert next_check_s(results[-1], Policy(), at(50)) <= 600  # within soft_hold, not cruise
    refuted = run_checks([read(60, 5), read(90, 88)], memory=results[-1].memory)
    assert [low_since(r) for r in refuted] == [at(10), at(10)]  # the eval's reading: no recovery


def test_a_long_evals_busy_minutes_are_no_news_for_an_open_episode() -> None:
    # input_bound_long_evals (held out): 15-40 min evals held busy past the hold, the episode
    # closed in each and opened again after it, 26 messages a run-day
    told = run_checks(TOLD)[-1]
    evals = [in_eval(m, began=28) for m in (30, 38, 47)]  # silent 2, 10 and 19 min: quiet
    results = run_checks([*evals, read(55, 5)], memory=told.memory)
    assert [r.memory.low_gpu_since for r in results] == [at(10)] * 4
    # each eval check is no news (the open alert stays), the reading after it is the episode's
    assert all(Condition.LOW_GPU in r.unjudged for r in results[:3])
    assert low_since(results[3]) == at(10)
    # the same busy readings while the trainer prints: the GPU is back
    printing = run_checks([read(m, 88) for m in (30, 34, 38, 47)], memory=told.memory)
    assert printing[-1].memory.low_gpu_since is None


def test_an_evals_first_minute_is_the_silences_once_a_later_check_shows_it() -> None:
    told = run_checks(TOLD)[-1]
    # evals, each read 40 s in (not yet quiet: busy readings 15 min apart would hold as a GPU
    # back) and again 3 min in, in the same silence: every first reading was an eval's
    evals = [(b, m) for b in (29.3, 34.3) for m in (b + 0.7, b + 3.7)]
    results = run_checks([in_eval(m, began=b) for b, m in evals], memory=told.memory)
    assert [r.memory.low_gpu_since for r in results] == [at(10)] * 4
    # four such first readings with no later check in their silence: the GPU is back
    evals = [(b, b + 0.7) for b in (29.3, 34.3, 39.3, 44.3)]
    unseen = run_checks([in_eval(m, began=b) for b, m in evals], memory=told.memory)
    assert unseen[-1].memory.low_gpu_since is None


def test_a_busy_reading_right_after_a_low_one_is_looked_at_again_within_the_hold() -> None:
    results = run_checks([read(0, 90), read(2, 5), read(6, 88)])
    assert results[-1].suspect  # an eval's first minute, or the GPU back: seen again soon
    assert next_check_s(results[-1], Policy(), at(6)) <= 600
    calm = run_checks([read(0, 90), read(2, 88), read(6, 88)])
    assert not calm[-1].suspect


def test_a_low_reading_in_a_silence_is_still_low_for_an_open_episode() -> None:
    told = run_checks(TOLD)[-1]
    # busy while printing at 30 and 40, but idle (nothing explains it) 3 min into a silence
    # between them: not a GPU that held busy
    quiet_low = running(at(35), util_pct=5, throughput=RATE, output_at=at(32))
    results = run_checks([read(30, 88), quiet_low, read(40, 88)], memory=told.memory)
    assert [r.memory.low_gpu_since for r in results] == [at(10)] * 3


def test_a_trainer_that_prints_less_often_than_it_is_checked_can_end_its_episode() -> None:
    told = run_checks(TOLD)[-1]
    # from minute 30 the GPU is busy, and every check lands 5 min after the trainer last
    # printed: each reading is in a silence, so none is news while a printed one is kept
    rare = [in_eval(m, began=m - 5) for m in range(30, 120, 10)]
    results = run_checks(rare, memory=told.memory)
    assert results[4].memory.low_gpu_since == at(10)  # minute 70: printed readings still kept
    assert results[-1].memory.low_gpu_since is None  # all 8 kept readings silent: judged


def test_a_retry_ends_the_old_attempts_episode() -> None:
    told = run_checks(TOLD)[-1]
    # attempt 2's first check: its trainer has not printed yet (silent since attempt 1's last
    # output), the GPU busy; then it prints
    first = running(at(30), attempt=2, util_pct=88, throughput=RATE, output_at=at(20))
    retry = running(at(40), attempt=2, util_pct=88, throughput=RATE)
    results = run_checks([first, retry], memory=told.memory)
    assert [r.memory.low_gpu_since for r in results] == [None, None]
    assert "low_gpu" not in keys(results[-1])


def test_many_checks_in_one_long_eval_do_not_end_the_episode() -> None:
    told = run_checks(TOLD)[-1]
    # alert-mode checks every 3 min through one 40-min eval: every kept reading is in a
    # silence, but one silence (an eval), not a trainer that prints rarely
    results = run_checks([in_eval(m, began=22) for m in range(24, 62, 3)], memory=told.memory)
    assert [r.memory.low_gpu_since for r in results] == [at(10)] * len(results)


def rare(minute: float, util: float, printed: float, attempt: int = 1) -> Observation:
    """A reading of a trainer that last printed at `printed`, its tree busy (the dataloader)."""
    return running(
        at(minute),
        attempt=attempt,
        util_pct=util,
        throughput=RATE,
        output_at=at(printed),
        **tree(at(minute)),
    )


# a trainer that prints every 4-5 min, checked every 10 min: 3-4 min silent at each check (the
# first check's print predates the attempt's first sight: not counted); learned gap 7 min
# (twice the median silence), capped at 5 (half the 10-min stall)
BUSY_RARE = [rare(m, 90, p) for m, p in ((0, -10), (10, 7), (20, 16), (30, 27), (40, 36))]


def explained(results: list[Assessment]) -> bool:
    return results[-1].memory.samples[-1].explained_idle


def test_a_trainer_that_prints_every_few_minutes_is_told_its_gpu_is_starved() -> None:
    starved = [rare(m, 5, p) for m, p in ((50, 46), (60, 57), (70, 66), (80, 76))]
    results = run_checks([*BUSY_RARE, *starved])
    # 3-4 min into its own print gap: not a save or a load, an idle GPU while training
    assert [r.memory.samples[-1].explained_idle for r in results[5:]] == [False] * 4
    assert low_since(results[-1]) == at(50)


def test_the_same_silence_in_a_trainer_that_prints_every_second_is_explained() -> None:
    busy = [rare(m, 90, m) for m in (0, 10, 20, 30, 40)]
    results = run_checks([*busy, rare(50, 5, 46)])  # 4 min silent, GPU idle, tree writing
    assert explained(results) and low_since(results[-1]) is None


def test_the_learned_print_gap_is_at_most_half_the_stall_threshold() -> None:
    # 7 min silent: within the learned 15 min, past its 5-min cap: a save; 4 min: not one
    assert explained(run_checks([*BUSY_RARE, rare(50, 5, 43)]))
    assert not explained(run_checks([*BUSY_RARE, rare(50, 5, 46)]))


def test_a_learned_gap_under_the_window_leaves_the_window() -> None:
    # prints about every minute: silences 3-48 s, a learned gap of 15 s; a reading 48 s into
    # a print gap with the GPU idle is not a save (the 2-min window holds, not the 15 s)
    busy = [rare(m, 90, m - s) for m, s in ((0, 0.8), (10, 0.05), (20, 0.7), (30, 0.8))]
    starved = [rare(m, 5, m - 0.8) for m in (40, 50, 60, 70)]
    results = run_checks([*busy, *starved])
    assert [r.memory.samples[-1].explained_idle for r in results[4:]] == [False] * 4
    assert low_since(results[-1]) == at(40)


def test_rechecks_in_one_silence_count_once() -> None:
    # prints every ~24 s (gap 2 min at most), then two 40-min evals each read three times:
    # a wake-up 10 min in and two rechecks; then 3 min into a save: a save
    checks = [rare(10, 90, 9.6), *(in_eval(m, 20) for m in (30, 42, 54))]
    checks += [rare(60, 90, 59.6), rare(64, 90, 63.6), *(in_eval(m, 70) for m in (80, 92))]
    assert explained(run_checks([*checks, rare(100, 5, 97)]))


def test_the_gap_is_learned_from_four_counted_checks_on() -> None:
    # two counted silences (3 and 4 min): too few to learn from, the 2-min window holds
    assert explained(run_checks([*BUSY_RARE[:3], rare(30, 5, 27)]))


def test_a_retrys_silences_before_its_first_print_teach_no_gap() -> None:
    first = [rare(m, 90, m) for m in (0, 10, 20)]
    # attempt 1 printed last at 21.5; attempt 2 loads silently (its state still shows that
    # print), then prints about every minute: three counted silences, too few to learn from
    loading = [rare(m, 3, 21.5, attempt=2) for m in (24, 26, 28)]
    printing = [rare(m, 90, m - 1, attempt=2) for m in (38, 48, 58)]
    results = run_checks([*first, *loading, *printing, rare(68, 5, 65, attempt=2)])
    assert explained(results)  # 3 min into a save


def test_checks_that_land_in_evals_do_not_teach_a_long_print_gap() -> None:
    # a trainer that prints every second: 3 of its 6 kept checks landed 10-30 min into evals
    evals = [rare(0, 90, 0), in_eval(30, 20), rare(40, 90, 40), in_eval(70, 40)]
    evals += [rare(80, 90, 80), in_eval(110, 95)]
    results = run_checks([*evals, rare(120, 5, 117)])  # then 3 min silent, GPU idle: a save
    assert results[-1].memory.samples[-1].explained_idle
