"""The supervisor's recent GPU readings (supervisor/gpurecent.py, state.json's `gpu_recent`):
medians over the heartbeats of the last minutes taken while the trainer printed as often as it
does. Pure: readings and times are handed in, nothing is slept."""

from __future__ import annotations

import datetime as dt
from typing import Any

from supervisor.gpurecent import MAX_BEATS, RECENT_S, RecentGpus

T0 = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
BEAT_S = 15


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def card(util: float, power: float | None = 600.0, index: int = 0) -> dict[str, Any]:
    return {"index": index, "util_pct": util, "power_w": power, "power_limit_w": 700.0}


def beats(
    recent: RecentGpus, start: int, stop: int, util: Any, printed: Any, attempt: int = 1
) -> None:
    """Heartbeats every BEAT_S from `start` to `stop` s: util(s) the reading, printed(s) when
    the trainer last printed."""
    for s in range(start, stop, BEAT_S):
        recent.note(at(s), [card(util(s))], printed(s), attempt)


def every(gap_s: int) -> Any:
    return lambda s: at(s - s % gap_s)


def test_a_waiting_gpu_read_on_a_batch_now_and_then_is_idle_by_its_median() -> None:
    recent = RecentGpus()
    # one read in four lands on a batch (100 %), the rest between (0-5 %)
    beats(recent, 0, 300, lambda s: 100.0 if s % 60 == 0 else 3.0, every(10))
    summary = recent.summary()
    assert summary is not None and summary["readings"] == 20
    assert summary["gpus"][0]["util_pct"] == 3.0 and summary["span_s"] == 285.0


def test_an_evals_readings_are_left_out_once_it_outlasts_the_print_gap() -> None:
    recent = RecentGpus()
    beats(recent, 0, 300, lambda s: 90.0, every(10))  # training, printing every 10 s
    # an eval from 300 s: silent, the GPU 60 % busy for its first minute, then 99 %
    beats(recent, 300, 435, lambda s: 60.0 if s < 360 else 99.0, lambda s: at(290))
    summary = recent.summary()
    # within RECENT_S of 420 s: training's 135-285 s; nothing of the eval, not even its first
    # minute, kept while it could have been a print running late
    assert summary is not None and summary["readings"] == 11
    assert summary["gpus"][0]["util_pct"] == 90.0 and RECENT_S == 300.0


def test_a_silence_is_kept_while_it_could_be_a_late_print_and_dropped_once_it_outlasts_it() -> None:
    recent = RecentGpus()
    beats(recent, 0, 300, lambda s: 90.0, every(10))
    beats(recent, 300, 345, lambda s: 2.0, lambda s: at(290))  # a save's first 45 s
    during = recent.summary()
    assert during is not None and during["readings"] == 20  # 17 of training, 3 of the save
    # the save lasts 4 min; the trainer prints again from 540 s, every 10 s
    beats(recent, 345, 540, lambda s: 2.0, lambda s: at(290))
    beats(recent, 540, 600, lambda s: 90.0, every(10))
    after = recent.summary()
    # training's 300 s before it fell out of the window and the 60 s since: none of the save
    assert after is not None and after["readings"] == 4
    assert after["gpus"][0]["util_pct"] == 90.0


def test_a_pause_shorter_than_the_print_gap_keeps_its_readings() -> None:
    recent = RecentGpus()
    beats(recent, 0, 300, lambda s: 90.0, every(10))
    beats(recent, 300, 345, lambda s: 40.0, lambda s: at(290))  # 55 s without a print
    beats(recent, 345, 420, lambda s: 90.0, every(10))
    summary = recent.summary()
    assert summary is not None and summary["readings"] == 20  # the pause's 3 readings kept
    assert summary["gpus"][0]["util_pct"] == 90.0


def test_a_trainer_that_prints_every_4_min_is_training_between_its_prints() -> None:
    recent = RecentGpus()
    beats(recent, 0, 1800, lambda s: 5.0, every(240))  # a starved rare printer
    summary = recent.summary()
    assert recent.fresh_s() == 480.0
    assert summary is not None and summary["readings"] == 20  # every beat of the last 5 min


def test_a_new_attempt_starts_afresh() -> None:
    recent = RecentGpus()
    beats(recent, 0, 300, lambda s: 95.0, every(10))
    beats(recent, 300, 345, lambda s: 4.0, every(10), attempt=2)
    summary = recent.summary()
    assert summary is not None and summary["readings"] == 3
    assert summary["gpus"][0]["util_pct"] == 4.0


def test_no_print_yet_or_a_gpu_without_power_reads_as_none() -> None:
    recent = RecentGpus()
    beats(recent, 0, 120, lambda s: 95.0, lambda s: None)
    assert recent.summary() is None  # loading: nothing printed, nothing is training's
    recent.note(at(120), [card(95.0, None), card(80.0, index=1)], at(120), 1)
    summary = recent.summary()
    assert summary is not None
    assert [(g["index"], g["util_pct"], g["power_w"]) for g in summary["gpus"]] == [
        (0, 95.0, None),
        (1, 80.0, 600.0),
    ]


def test_a_fast_heartbeat_keeps_only_the_newest_readings() -> None:
    # a heartbeat every second: the last 5 min would be 300 readings of every GPU, each beat
    recent = RecentGpus()
    for s in range(300):
        recent.note(at(s), [card(50.0 if s < 300 - MAX_BEATS else 90.0)], at(s), 1)
    summary = recent.summary()
    assert summary is not None and summary["readings"] == MAX_BEATS
    assert summary["gpus"][0]["util_pct"] == 90.0  # the newest MAX_BEATS, not the oldest
