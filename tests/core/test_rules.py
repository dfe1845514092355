"""`assess`: findings, health, stall recovery and memory, from data and an injected `now`."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.memory import Memory
from core.protocol import ProbeSnapshot
from core.rules import Health, Observation, Policy, Thresholds, assess, next_check_s
from tests.core.builders import (
    HELD_ONLY,
    IDLE_TREE,
    at,
    failure,
    fix,
    fresh_memory,
    keys,
    make_probe,
    run_checks,
    running,
    state_doc,
    unreachable,
    with_state,
)

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 88, in <module>\n'
    "    main()\n"
    "RuntimeError: CUDA error: an illegal memory access was encountered\n"
)


# -- new attempts -------------------------------------------------------------------------


def test_a_new_attempt_names_the_failure_and_the_fix_applied() -> None:
    first, second = run_checks(
        [
            running(at(1)),
            running(
                at(3),
                attempt=2,
                last_failure=failure(1, "oom", exit_code=1),
                fixes=[fix(1, "oom", "eval_batch_size 64 -> 32")],
            ),
        ]
    )
    assert first.findings == ()
    assert second.new_attempt
    (event,) = second.events
    assert event.key == "attempt:2"
    assert "attempt 2/3" in event.reason
    assert "oom (exit 1)" in event.reason
    assert "a fix was applied (ok)" in event.reason
    assert event.quote == "fix applied: eval_batch_size 64 -> 32"  # instance text: quoted
    assert "eval_batch_size" not in event.reason
    assert second.health is Health.ALERT
    assert second.conditions == ()  # an event, not a lasting condition


def test_a_retry_without_a_fix_says_so_plainly() -> None:
    *_, result = run_checks(
        [running(at(1)), running(at(3), attempt=2, last_failure=failure(1, "error", 2))]
    )
    (event,) = result.events
    assert event.reason == "attempt 2/3 started after error (exit 2)"


def test_a_retry_after_a_kind_this_watcher_does_not_know_names_that_kind() -> None:
    doc = failure(1, "warp_core", 2)
    *_, result = run_checks([running(at(1)), running(at(3), attempt=2, last_failure=doc)])
    (event,) = result.events
    assert event.reason == "attempt 2/3 started after error (warp_core) (exit 2)"


def test_a_retry_already_running_at_the_first_check_is_still_reported() -> None:
    # A missing module fails in seconds: by the first check (1 min) attempt 2 may be running.
    (result,) = run_checks(
        [
            running(
                at(1),
                attempt=2,
                last_failure=failure(1, "missing_module"),
                fixes=[fix(1, "missing_module", "pip install einops")],
            )
        ]
    )
    assert result.new_attempt
    assert "attempt:2" in keys(result)
    assert result.events[0].quote == "fix applied: pip install einops"


def test_attempt_one_at_the_first_check_is_not_an_event() -> None:
    (result,) = run_checks([running(at(1))])
    assert not result.new_attempt
    assert result.health is Health.OK


def test_the_same_attempt_is_announced_once() -> None:
    results = run_checks([running(at(1)), running(at(3), attempt=2), running(at(7), attempt=2)])
    assert [r.new_attempt for r in results] == [False, True, False]


# -- log markers ----------------------------------------------------------------------------


def test_a_traceback_in_new_log_text_is_an_event_once_the_trainer_runs_on() -> None:
    held, result = run_checks(
        [running(at(1), log_text="step 10 loss 2.1\n" + TRACEBACK), running(at(3))]
    )
    assert held.events == () and held.recheck_s == 60.0  # is the attempt dying of it?
    (event,) = result.events
    assert event.key == "traceback:1"
    assert event.quote is not None
    assert "Traceback" in event.quote or "RuntimeError" in event.quote
    assert result.health is Health.ALERT


@pytest.mark.parametrize(
    "text",
    [
        # tqdm redraws with `\r` and no newline: the traceback starts on the bar's line
        "\r 10%|#         | 10/100\r 20%|##        | 20/100Traceback (most recent call last):\n"
        '  File "train.py", line 3, in <module>\n'
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
        # a module-qualified exception on its own
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n",
        "ValueError: expected 3 channels\n",
        "Segmentation fault (core dumped)\n",
    ],
)
def test_error_markers_are_found_in_real_shaped_logs(text: str) -> None:
    _, result = run_checks([running(at(1), log_text=text), running(at(3))])
    assert "traceback:1" in keys(result)


def test_ordinary_log_lines_are_not_errors() -> None:
    text = "step 100 loss 1.23 error_rate 0.1\nvalidation: no errors\n 50%|#####     | 50/100\r"
    (result,) = run_checks([running(at(1), log_text=text)])
    assert result.findings == ()


def test_the_traceback_that_ended_the_previous_attempt_rides_on_the_retry_event() -> None:
    *_, result = run_checks([running(at(1)), running(at(3), attempt=2, log_text=TRACEBACK)])
    assert [f.key for f in result.findings] == ["attempt:2"]


def test_an_error_seen_while_its_attempt_dies_is_told_once_by_the_retry() -> None:
    # the check saw the traceback before the supervisor said `retrying`: one episode, one event
    results = run_checks(
        [
            running(at(1)),
            running(at(2), log_text=TRACEBACK),
            running(at(3), attempt=2),
            running(at(6), attempt=2),
        ]
    )
    assert [sorted(keys(r)) for r in results] == [[], [], ["attempt:2"], []]


# -- soft signals: two checks AND ten minutes -------------------------------------------------


def test_low_gpu_for_two_checks_in_three_minutes_is_not_an_alert() -> None:
    results = run_checks([running(at(20), util_pct=3), running(at(23), util_pct=3)])
    assert all(r.findings == () for r in results)


def test_low_gpu_for_four_readings_over_ten_minutes_alerts() -> None:
    lows = [running(at(m), util_pct=u) for m, u in ((20, 3), (23, 3), (26, 3), (30, 4))]
    results = run_checks(lows)
    assert all(r.findings == () for r in results[:3])
    (finding,) = results[3].findings
    assert finding.key == "low_gpu"
    assert finding.soft and finding.since == at(20)
    assert "4%" in finding.reason


def test_two_low_readings_ten_minutes_apart_are_a_chance_not_an_episode() -> None:
    # a healthy run whose read lands on host-side work twice in a row (the bench's held-out
    # idle_blips: told on 20 % of run-days while two low readings were enough)
    busy = ((33, 95), (36, 97), (39, 96), (42, 94))
    obs = [running(at(m), util_pct=u) for m, u in ((20, 3), (30, 4), *busy)]
    results = run_checks(obs)
    assert all(r.findings == () for r in results)
    # looked at again soon while the two low readings outweigh the busy ones, then calm
    assert [r.recheck_s for r in results] == [200.0] * 5 + [None]
    assert next_check_s(results[1], Policy(), at(30)) == 200.0  # the hold's third


def test_low_gpu_over_ten_minutes_but_in_one_check_is_not_an_alert() -> None:
    results = run_checks([running(at(20), util_pct=80), running(at(35), util_pct=3)])
    assert results[1].findings == ()


def test_a_busy_reading_sets_the_low_gpu_onset_back() -> None:
    lows = ((10, 3), (13, 3), (16, 3), (21, 3))
    steady = run_checks([running(at(m), util_pct=u) for m, u in ((0, 3), *lows)])
    assert [keys(r) for r in steady] == [set(), set(), set(), {"low_gpu"}, {"low_gpu"}]
    obs = [running(at(m), util_pct=u) for m, u in ((0, 3), (5, 50), *lows)]
    results = run_checks(obs)
    assert [keys(r) for r in results] == [set()] * 5 + [{"low_gpu"}]
    assert results[-1].findings[0].since == at(10)  # the episode begins after the busy one


def test_output_stale_across_two_checks_in_three_minutes_is_not_an_alert() -> None:
    # Busy GPU (a long eval, say), so this is a soft signal and not a stall.
    silent_since = at(10)
    results = run_checks(
        [running(at(11), output_at=silent_since), running(at(14), output_at=silent_since)]
    )
    assert all(r.findings == () for r in results)


def test_output_stale_for_ten_minutes_and_two_checks_alerts() -> None:
    silent_since = at(10)
    results = run_checks(
        [running(at(13), output_at=silent_since), running(at(21), output_at=silent_since)]
    )
    assert results[0].findings == ()
    (finding,) = results[1].findings
    assert finding.key == "stale_output"
    assert finding.soft
    assert "11 min" in finding.reason


def test_a_new_step_means_output_is_not_stale() -> None:
    results = run_checks(
        [
            running(at(13), step=100, output_at=at(2)),
            running(at(21), step=101, output_at=at(2)),
        ]
    )
    assert "stale_output" not in keys(results[1])


def test_slow_throughput_needs_three_checks_thirty_minutes_and_an_hour_lost() -> None:
    obs = [
        running(at(0), throughput=2.0),
        running(at(5), throughput=2.0),
        running(at(10), throughput=0.5),
        running(at(13), throughput=0.5),
        running(at(21), throughput=0.6),  # three checks, but only 11 minutes
        running(at(40), throughput=0.6),  # held 30 minutes, but about 23 minutes lost
        running(at(100), throughput=0.5),  # about 67 minutes lost
    ]
    results = run_checks(obs)
    assert [keys(r) for r in results] == [set(), set(), set(), set(), set(), set(), {"slow"}]
    held_only = run_checks(obs, policy=HELD_ONLY)
    assert "slow" in keys(held_only[5])  # the gate, not the hold, kept minute 40 quiet
    assert results[-1].findings[0].soft
    assert "baseline 2.00" in results[-1].findings[0].reason


def test_throughput_just_above_half_the_baseline_is_fine() -> None:
    obs = [running(at(m), throughput=t) for m, t in ((0, 2.0), (10, 1.1), (20, 1.1), (30, 1.1))]
    assert all(r.findings == () for r in run_checks(obs))


# -- unreachable ----------------------------------------------------------------------------


def test_unreachable_alerts_only_after_the_configured_failures_in_a_row() -> None:
    policy = Policy(thresholds=Thresholds(unreachable_checks=3))
    results = run_checks([unreachable(at(m)) for m in (1, 4, 7)], policy=policy)
    assert [keys(r) for r in results] == [set(), set(), {"unreachable"}]
    assert "3 checks in a row" in results[-1].findings[0].reason
    assert "connection refused" in results[-1].findings[0].reason
    assert results[-1].state is None


def test_a_good_check_resets_the_unreachable_count() -> None:
    obs = [unreachable(at(1)), running(at(4)), unreachable(at(7)), unreachable(at(10))]
    results = run_checks(obs)
    assert [keys(r) for r in results] == [set(), set(), set(), {"unreachable"}]


def test_a_changed_host_key_is_an_alert_at_once() -> None:
    obs = Observation(at=at(1), error="host key changed", host_key_changed=True)
    result = assess(fresh_memory(), obs, Policy(), at(1))
    assert keys(result) == {"host_key"}


def test_unreachable_host_leaves_the_low_gpu_streak_for_later() -> None:
    results = run_checks(
        [
            running(at(0), util_pct=2),
            unreachable(at(5)),
            unreachable(at(8)),
            running(at(20), util_pct=2),
        ]
    )
    assert keys(results[2]) == {"unreachable"}
    assert results[3].findings == ()  # the streak restarted: one check is not two


# -- the supervisor's own heartbeat -----------------------------------------------------------


def test_a_stale_supervisor_heartbeat_alerts_on_the_second_check() -> None:
    hb = at(5)
    results = run_checks([running(at(8), heartbeat_at=hb), running(at(11), heartbeat_at=hb)])
    assert results[0].findings == ()
    (finding,) = results[1].findings
    assert finding.key == "supervisor_dead"
    assert "360s" in finding.reason
    assert "4242" in finding.reason


def test_a_fresh_heartbeat_between_stale_ones_resets_the_count() -> None:
    results = run_checks(
        [
            running(at(8), heartbeat_at=at(5)),
            running(at(11)),
            running(at(14), heartbeat_at=at(11)),
        ]
    )
    assert all(r.findings == () for r in results)


def test_staleness_compares_instance_clocks_not_the_watchers() -> None:
    # The watcher's clock is an hour ahead of the instance: nothing is stale.
    obs = replace(running(at(10)), at=at(70))
    results = run_checks([obs, replace(running(at(13)), at=at(73))])
    assert all(r.findings == () for r in results)


# -- stall ------------------------------------------------------------------------------------


def test_a_silent_trainer_with_an_idle_gpu_is_killed_once() -> None:
    _, result, again = run_checks(
        [
            running(at(1)),
            running(at(12), output_at=at(1), util_pct=1, **IDLE_TREE),
            running(at(14), output_at=at(1), util_pct=1, **IDLE_TREE),
        ]
    )
    assert result.kill_attempt == 1
    assert "stall_kill:1" in keys(result)
    assert "660s" in result.events[0].reason and "GPU 1%" in result.events[0].reason
    assert result.memory.stall_kills == (1,)
    assert again.kill_attempt is None  # never twice for the same attempt
    assert "stall" in keys(again)
    assert "needs a human" in again.findings[-1].reason


def test_where_no_gpu_can_be_read_silence_alone_decides() -> None:
    _, result = run_checks(
        [running(at(0)), running(at(11), output_at=at(0), util_pct=None, **IDLE_TREE)]
    )
    assert result.kill_attempt == 1
    assert "GPU unreadable" in result.events[0].reason


def test_silent_but_busy_is_not_killed() -> None:
    _, result = run_checks([running(at(0)), running(at(30), output_at=at(0), util_pct=97)])
    assert result.kill_attempt is None
    assert not {"stall", "stall_kill:1"} & keys(result)


def test_silence_under_the_stall_threshold_is_not_killed() -> None:
    _, result = run_checks(
        [running(at(0)), running(at(9), output_at=at(0), util_pct=0, **IDLE_TREE)]
    )
    assert result.kill_attempt is None
    assert result.findings == ()


def test_a_second_stall_in_the_next_attempt_goes_to_the_human() -> None:
    results = run_checks(
        [
            running(at(1)),
            running(at(12), output_at=at(1), util_pct=0, **IDLE_TREE),  # killed
            running(at(13), attempt=2, output_at=at(13), util_pct=50),  # retry runs
            running(at(40), attempt=2, output_at=at(25), util_pct=0, **IDLE_TREE),  # stalls again
        ]
    )[1:]
    assert results[0].kill_attempt == 1
    assert results[2].kill_attempt is None
    assert "stall" in keys(results[2])
    assert "stall" in {f.key for f in results[2].conditions}


def test_the_retry_after_a_stall_kill_is_not_itself_a_stall() -> None:
    # The supervisor keeps last_output_at from the killed attempt until the new one prints.
    results = run_checks(
        [
            running(at(1)),
            running(at(12), output_at=at(1), util_pct=0, **IDLE_TREE),
            running(at(13), attempt=2, output_at=at(1), util_pct=0, **IDLE_TREE),
            running(at(15), attempt=2, output_at=at(1), util_pct=0, **IDLE_TREE),
        ]
    )[1:]
    assert results[0].kill_attempt == 1
    assert keys(results[1]) == {"attempt:2"}
    assert results[2].findings == ()


def test_a_retry_that_stays_silent_long_enough_is_a_stall() -> None:
    results = run_checks(
        [
            running(at(1)),
            running(at(3), attempt=2, output_at=at(1), util_pct=0, **IDLE_TREE),
            running(at(14), attempt=2, output_at=at(1), util_pct=0, **IDLE_TREE),
        ]
    )
    assert results[2].kill_attempt == 2


def test_the_first_sight_of_an_attempt_is_never_judged_silent() -> None:
    (result,) = run_checks([running(at(30), output_at=at(0), util_pct=0, **IDLE_TREE)])
    assert result.kill_attempt is None


def test_a_retry_stall_is_measured_from_when_the_retry_was_first_seen() -> None:
    # Restart of the watcher between the two checks: the memory carries the first sighting.
    first = run_checks(
        [running(at(1)), running(at(3), attempt=2, output_at=at(1), util_pct=0, **IDLE_TREE)]
    )
    reloaded = Memory.from_json(json.loads(json.dumps(first[-1].memory.to_json())))
    assert reloaded.attempt_seen_at == at(3)
    early, late = run_checks(
        [
            running(at(12), attempt=2, output_at=at(1), util_pct=0, **IDLE_TREE),
            running(at(13), attempt=2, output_at=at(1), util_pct=0, **IDLE_TREE),
        ],
        memory=reloaded,
    )
    assert early.kill_attempt is None
    assert late.kill_attempt == 2


def test_a_retrying_supervisor_is_not_a_stall() -> None:
    (result,) = run_checks([with_state(at(30), status="retrying", last_output_at=at(0))])
    assert result.kill_attempt is None
    assert result.findings == ()


# -- terminal -------------------------------------------------------------------------------


def test_a_terminal_state_is_terminal_health_with_no_soft_findings() -> None:
    results = run_checks(
        [
            *(running(at(m), util_pct=2) for m in (0, 4, 8, 11)),
            with_state(at(21), status="done", outcome="completed", last_output_at=at(0)),
        ]
    )
    assert keys(results[3]) == {"low_gpu"}
    final = results[4]
    assert final.health is Health.TERMINAL
    assert [f.key for f in final.findings] == ["terminal:done"]
    assert final.kill_attempt is None
    assert final.memory.cadence.phase.value == "terminal"


@pytest.mark.parametrize("status", ["failed", "stopped"])
def test_failed_and_stopped_are_terminal(status: str) -> None:
    (result,) = run_checks([with_state(at(5), status=status, outcome="killed")])
    assert result.health is Health.TERMINAL
    assert keys(result) == {f"terminal:{status}"}


# -- unreadable state -------------------------------------------------------------------------


def invalid_state_obs(when_min: float, raw_state: object) -> Observation:
    probe_json = {
        "probe": 1,
        "at": f"2026-11-28T03:{int(when_min):02d}:00Z",
        "state": raw_state,
        "log": None,
        "tail": [],
        "gpus": [],
    }
    from core.protocol import parse_probe

    return Observation(at=at(when_min), probe=parse_probe(json.dumps(probe_json)))


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (state_doc(schema=2), "schema 2 is not supported"),
        (state_doc(schema=0), "schema 0 is not supported"),
        ({k: v for k, v in state_doc().items() if k != "schema"}, "schema None"),
        (state_doc(step=-1), "step"),
        (state_doc(status="exploded"), "status"),
        (state_doc(attempt="two"), "attempt"),
        ("garbage", "not an object"),
        ([1, 2, 3], "not an object"),
    ],
)
def test_an_unreadable_state_is_an_invalid_state_alert_with_a_reason(
    raw: object, words: str
) -> None:
    (result,) = run_checks([invalid_state_obs(5, raw)])
    (finding,) = result.findings
    assert finding.key == "invalid_state"
    assert words in finding.reason
    assert result.state is None
    assert result.health is Health.ALERT


def test_garbage_probe_output_is_an_invalid_state_alert() -> None:
    # What the watcher builds when parse_probe raises ProtocolError.
    probe = ProbeSnapshot(probe=1, at=at(5), state_error="probe answered non-JSON: 'Segm'")
    result = assess(fresh_memory(), Observation(at=at(5), probe=probe), Policy(), at(5))
    assert keys(result) == {"invalid_state"}
    assert "non-JSON" in result.findings[0].reason


def test_a_missing_state_just_after_launch_is_not_an_alert() -> None:
    missing = "state.json missing: no supervisor has written state in /runs/x"
    early = Observation(at=at(1), probe=make_probe(at(1), None, state_error=missing))
    assert assess(fresh_memory(), early, Policy(), at(1)).findings == ()
    late = Observation(at=at(5), probe=make_probe(at(5), None, state_error=missing))
    result = assess(fresh_memory(), late, Policy(), at(5))
    assert keys(result) == {"invalid_state"}


def test_an_empty_state_file_is_an_alert_even_just_after_launch() -> None:
    empty = "state.json is empty (truncated)"
    obs = Observation(at=at(1), probe=make_probe(at(1), None, state_error=empty))
    assert keys(assess(fresh_memory(), obs, Policy(), at(1))) == {"invalid_state"}


# -- memory survives a restart ----------------------------------------------------------------


def test_memory_round_trips_through_json() -> None:
    results = run_checks(
        [
            running(at(0), throughput=2.0, util_pct=3),
            unreachable(at(2)),
            running(at(12), output_at=at(1), util_pct=0, **IDLE_TREE),
        ]
    )
    assert results[-1].memory.stall_kills == (1,)
    memory = results[-1].memory
    doc = json.loads(json.dumps(memory.to_json()))
    assert Memory.from_json(doc) == memory


def test_a_restarted_watcher_continues_its_streaks() -> None:
    first = run_checks([running(at(m), util_pct=3) for m in (20, 23, 26)])[-1].memory
    reloaded = Memory.from_json(json.loads(json.dumps(first.to_json())))
    (result,) = run_checks([running(at(30), util_pct=3)], memory=reloaded)
    assert keys(result) == {"low_gpu"}


def test_a_restarted_watcher_never_kills_the_same_attempt_twice() -> None:
    killed = run_checks(
        [running(at(1)), running(at(12), output_at=at(1), util_pct=0, **IDLE_TREE)]
    )[-1]
    assert killed.kill_attempt == 1
    reloaded = Memory.from_json(json.loads(json.dumps(killed.memory.to_json())))
    (result,) = run_checks(
        [running(at(14), output_at=at(1), util_pct=0, **IDLE_TREE)], memory=reloaded
    )
    assert result.kill_attempt is None


def test_memory_keeps_only_recent_samples() -> None:
    results = run_checks([running(at(m)) for m in range(20)])
    assert len(results[-1].memory.samples) == 8
    assert results[-1].memory.samples[-1].at == at(19)


# -- properties over arbitrary check sequences ------------------------------------------------

check_steps = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=40),  # minutes since the previous check
        st.integers(min_value=0, max_value=1),  # attempt increment
        st.one_of(st.none(), st.integers(min_value=0, max_value=60)),  # silence, minutes
        st.one_of(st.none(), st.floats(min_value=0, max_value=100)),  # GPU util
        st.sampled_from(["running", "running", "retrying", "unreachable"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(check_steps)
def test_no_attempt_is_ever_killed_twice_and_kills_stay_within_budget(
    steps: list[tuple[int, int, int | None, float | None, str]],
) -> None:
    minute, attempt, observations = 0, 1, []
    for gap, bump, silence, util, status in steps:
        minute += gap
        attempt = min(attempt + bump, 3)
        if status == "unreachable":
            observations.append(unreachable(at(minute)))
            continue
        output_at = at(minute - silence) if silence is not None else None
        observations.append(
            running(at(minute), attempt=attempt, output_at=output_at, util_pct=util, status=status)
        )
    results = run_checks(observations)
    kills = [r.kill_attempt for r in results if r.kill_attempt is not None]
    assert len(kills) == len(set(kills)) <= Thresholds().max_stall_kills
    for result in results:
        assert (result.health is Health.OK) == (result.findings == ())
        assert Memory.from_json(json.loads(json.dumps(result.memory.to_json()))) == result.memory
