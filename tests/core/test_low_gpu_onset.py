"""The `low_gpu` rule's onset (core/soft_rules.low_onset): low readings, net of busy ones, over
the hold; a save's silence counts once; an eval's busy readings are no news. Found by the
detection bench's held-out low-GPU families: `idle_blips` (a healthy run told on 20 % of
run-days when two low readings 10 min apart were enough) and `bursty_input_bound` (a starved
GPU read busy one read in five, told after 113 min at p95). Pure: data and an injected `now`."""

from __future__ import annotations

from core.findings import Thresholds
from core.gpu_onset import onset_interval_s
from core.rules import Assessment, Observation, Policy, next_check_s
from core.vocab import Condition
from tests.core.builders import at, run_checks, running, tree

RATE = 2.0


def read(minute: float, util: float) -> Observation:
    """A reading while the trainer prints."""
    return running(at(minute), util_pct=util, throughput=RATE)


def silent(minute: float, util: float, since: float) -> Observation:
    """A reading in a silence begun at `since`, the trainer's tree busy (saving, evaluating)."""
    return running(
        at(minute), util_pct=util, throughput=RATE, output_at=at(since), **tree(at(minute))
    )


def told(results: list[Assessment]) -> list[bool]:
    return [any(f.key == Condition.LOW_GPU for f in r.findings) for r in results]


def test_a_starved_gpu_read_busy_now_and_then_is_still_told() -> None:
    utils = (5, 5, 60, 5, 5, 5, 5)  # a read landed on a batch at minute 16
    results = run_checks([read(10 + 3 * i, u) for i, u in enumerate(utils)])
    # 4 low readings net of the busy one at minute 25: 15 min after the first
    assert told(results) == [False] * 5 + [True, True]
    assert results[-1].findings[0].since == at(10)


def test_a_saves_silence_read_again_and_again_counts_once() -> None:
    # a frequent printer writes a checkpoint from minute 10, read four times with its GPU
    # idle; then it trains again at a busy GPU
    saving = [silent(m, 2, since=10) for m in (12, 15, 18, 22)]
    results = run_checks([read(0, 95), *saving, read(25, 95)])
    assert not any(told(results))
    # the same four low readings while the trainer prints: a starved GPU
    printing = run_checks([read(0, 95), *(read(m, 2) for m in (12, 15, 18, 22))])
    assert told(printing)[-1]


def test_an_evals_busy_readings_are_no_news_to_an_onset() -> None:
    lows = [read(10, 5), read(13, 5)]
    evaluating = [silent(m, 90, since=14) for m in (17, 20)]  # 3 and 6 min silent: an eval
    results = run_checks([*lows, *evaluating, read(22, 5), read(25, 5)])
    assert told(results) == [False] * 5 + [True]
    assert results[-1].findings[0].since == at(10)
    # the onset is looked at again every third of the hold while the trainer prints, every
    # two thirds in the eval: every 200 s through a 40-min eval would fill the kept samples
    # with it, at the hold a 5-9 min eval cost the onset 10 min (input_bound p95 24.9 min)
    assert next_check_s(results[1], Policy(), at(13)) == onset_interval_s(Thresholds())
    assert next_check_s(results[3], Policy(), at(20)) == 2 * onset_interval_s(Thresholds())


def test_an_onset_of_half_a_reading_is_not_read_more_often_in_an_eval() -> None:
    # one save read (idle in a busy silence: half a low reading), then an eval: no onset
    # worth reading the eval more often for (a healthy run's saves are that)
    checks = [read(0, 95), silent(10, 1, since=7), silent(17, 90, since=13)]
    results = run_checks(checks)
    assert results[1].memory.samples[-1].explained_idle
    assert next_check_s(results[-1], Policy(), at(17)) > 2 * onset_interval_s(Thresholds())


def test_saves_after_each_eval_count_half() -> None:
    # evaluates every 20 min (busy, skipped), then saves (idle in a busy silence: explained);
    # each save read once: four saves are two low readings' worth, and with one low reading
    # while it prints, three: not an episode
    cycle = []
    for start in (10, 30, 50, 70):
        cycle += [silent(start + 7, 90, since=start), silent(start + 15, 1, since=start + 9)]
    results = run_checks([read(0, 95), *cycle, read(88, 5)])
    assert all(r.memory.samples[-1].explained_idle for r in results[2:9:2])
    assert not any(told(results))
