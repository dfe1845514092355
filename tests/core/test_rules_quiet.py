"""Rules that keep a healthy run quiet: no false soft alerts from sparse readings, no flapping
on missing readings, one message per event, a quick second look at a soft signal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.config import Config, RunConfig, parse_config
from core.errors import ConfigError
from core.memory import Memory
from core.models import OpenAlert
from core.rules import Policy, Thresholds
from core.run_settings import policy_for
from core.transitions import plan_alerts
from tests.core.builders import HELD_ONLY, at, keys, run_checks, running


def test_two_low_gpu_readings_thirty_minutes_apart_are_not_one_episode() -> None:
    # two cruise checks that happen to land on checkpoint writes, with progress in between
    results = run_checks(
        [running(at(0), util_pct=2, step=100), running(at(30), util_pct=1, step=4000)]
    )
    assert all("low_gpu" not in keys(r) for r in results)


def test_low_gpu_readings_within_the_hold_still_alert() -> None:
    results = run_checks([running(at(m), util_pct=2) for m in (0, 4, 7)] + [running(at(10))])
    assert "low_gpu" not in keys(results[-1])  # the newest reading is busy
    results = run_checks(
        [running(at(m), util_pct=2) for m in (0, 4, 7)] + [running(at(10), util_pct=1)]
    )
    assert "low_gpu" in keys(results[-1])


def test_a_first_soft_signal_makes_the_check_a_suspect_one() -> None:
    (first,) = run_checks([running(at(0), util_pct=2)])
    assert first.suspect and first.findings == ()
    (calm,) = run_checks([running(at(0), util_pct=90)])
    assert not calm.suspect


def test_a_missing_throughput_reading_leaves_an_open_slow_alert_open() -> None:
    results = run_checks(
        [
            running(at(0), throughput=2.0),
            running(at(10), throughput=0.5),
            running(at(25), throughput=0.5),
            running(at(41), throughput=0.5),
            running(at(44), throughput=None),  # in an eval longer than the window
        ],
        policy=HELD_ONLY,
    )
    assert "slow" in keys(results[3])
    last = results[-1]
    assert "slow" in last.unjudged
    open_alerts = {"slow": OpenAlert("r", "slow", at(41), at(41), "slow")}
    plan = plan_alerts(
        open_alerts, last.findings, at(44), resend_after_s=4 * 3600, unjudged=last.unjudged
    )
    assert plan.resolved == ()


def test_a_traceback_logged_again_at_every_check_is_announced_once() -> None:
    text = "Traceback (most recent call last):\nValueError: bad batch\n"
    results = run_checks(
        [
            running(at(0), log_text=text),
            running(at(1), log_text=text),
            running(at(3), log_text=text),
            running(at(5), log_text=text),
        ]
    )
    # held at first (the attempt may be dying of it), told once when the trainer ran on
    assert [("traceback:1" in keys(r)) for r in results] == [False, True, False, False]


def test_announced_events_survive_a_restart() -> None:
    text = "Traceback (most recent call last):\nValueError: bad batch\n"
    _, first = run_checks([running(at(0), log_text=text), running(at(1), log_text=text)])
    assert "traceback:1" in keys(first)
    memory = Memory.from_json(first.memory.to_json())
    (again,) = run_checks([running(at(3), log_text=text)], memory=memory)
    assert "traceback:1" not in keys(again)


def test_a_held_error_survives_a_restart() -> None:
    text = "Traceback (most recent call last):\nValueError: bad batch\n"
    (first,) = run_checks([running(at(0), log_text=text)])
    assert first.events == ()
    memory = Memory.from_json(first.memory.to_json())
    (again,) = run_checks([running(at(2))], memory=memory)
    assert "traceback:1" in keys(again)


def run_config(**extra: object) -> RunConfig:
    doc = {"name": "r", "run_dir": "/w/r", "command": "python t.py", "local": True, **extra}
    return RunConfig.model_validate(doc)


def test_a_supervisor_that_beats_rarely_gets_a_longer_staleness_threshold() -> None:
    config = Config(runs=[run_config(heartbeat_s=300)])
    assert policy_for(config, config.runs[0]).thresholds.heartbeat_stale_s == 1200
    quick = Config(runs=[run_config(heartbeat_s=5)])
    assert (
        policy_for(quick, quick.runs[0]).thresholds.heartbeat_stale_s
        == Thresholds().heartbeat_stale_s
    )


def test_a_token_in_the_file_is_refused_with_the_variable_to_use() -> None:
    with pytest.raises(ConfigError, match="SLEEPWATCH_TELEGRAM_TOKEN"):
        parse_config({"telegram": {"token": "123:abc"}})
    with pytest.raises(ConfigError, match="VAST_API_KEY"):
        parse_config({"vast": {"api_key": "k"}})


def test_policy_defaults_match_the_contract() -> None:
    policy = Policy()
    assert policy.cadence.early_s == (60.0, 120.0, 240.0, 480.0)
    assert policy.cadence.cruise_s == 1800.0 and policy.cadence.alert_s == 180.0
    assert policy.thresholds.resend_after_s == timedelta(hours=4).total_seconds()


def test_a_missing_throughput_reading_neither_breaks_nor_extends_a_slow_episode() -> None:
    results = run_checks(
        [
            running(at(0), throughput=2.0),
            running(at(10), throughput=0.5),
            running(at(14), throughput=None),
            running(at(25), throughput=0.5),
            running(at(40), throughput=0.5),
        ],
        policy=HELD_ONLY,
    )
    assert "slow" not in keys(results[-2])  # the missing reading is not a third check
    assert "slow" in keys(results[-1])


def test_a_steady_soft_episode_lets_the_cadence_calm_down() -> None:
    from core.cadence import Phase

    obs = [running(at(0), util_pct=90)]
    obs += [running(at(10 + 3 * i), util_pct=2) for i in range(12)]
    results = run_checks(obs)
    assert all("low_gpu" in keys(r) for r in results[5:])  # the alert stays open...
    phases = [r.memory.cadence.phase for r in results]
    assert Phase.ALERT in phases[5:8]
    assert phases[-1] is not Phase.ALERT  # ...but the run is no longer checked every 3 min
