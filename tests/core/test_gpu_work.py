"""The `slow` rule's last gate (core/gpu_work.py): a slowdown whose GPU kept its work (as busy,
drawing as much power) is heavier steps, not told, and its rate becomes the run's; one whose
GPU waits (less busy) or throttles (less power) is told as before. Pure: data and an injected
`now`, no I/O."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from core.answers import run_lines
from core.baseline import heavier_of
from core.gpu_work import as_busy
from core.memory import Memory, Sample, lowest_util
from core.models import RunRecord, RunView
from core.rules import Assessment
from tests.core.builders import HELD_ONLY, T0, at, gpu, keys, run_checks, running

RATE = 2.0  # steps/s: the run's own rate
AT_RATE = (95.0, 600.0)  # the GPU at the run's rate: utilisation %, power W


def card(util: float, power: float | None, throttle: tuple[str, ...] = ()) -> dict[str, Any]:
    reading = gpu(util, 40000, 81920)
    if power is not None:
        reading.update(power_w=power, power_limit_w=700.0)
    if throttle:
        reading.update(throttle=list(throttle))
    return reading


def reads(
    share: float,
    gpu_after: tuple[float, float | None],
    *,
    until: int = 300,
    throttle: tuple[str, ...] = (),
    **kw: Any,
) -> list[Assessment]:
    """Every 10 min: the run's rate for 30 min, then `share` of it with the GPU at `gpu_after`
    (utilisation, power) and saying `throttle`; before that, AT_RATE."""
    obs = []
    for m in range(0, until, 10):
        util, power = AT_RATE if m < 30 else gpu_after
        said = () if m < 30 else throttle
        rate = RATE if m < 30 else RATE * share
        obs.append(running(at(m), throughput=rate, gpus=[card(util, power, said)]))
    return run_checks(obs, **kw)


def told(results: list[Assessment]) -> list[int]:
    return [10 * i for i, r in enumerate(results) if "slow" in keys(r)]


def test_heavier_steps_with_the_gpu_as_busy_are_not_told_and_become_the_runs_rate() -> None:
    results = reads(0.6, AT_RATE)
    assert told(results) == []
    assert abs((results[-1].memory.baseline_throughput or 0) - 0.6 * RATE) < 1e-9
    # rebased at the check that would have told it (minute 180): its sag and dip are over
    rebased = results[18].memory
    assert rebased.baseline_throughput == 0.6 * RATE and results[17].memory.sag_since
    assert rebased.sag_since is None and rebased.dip_since is None and rebased.sag_lost_s == 0
    assert (rebased.heavier_at, rebased.heavier_from) == (at(30), RATE)  # for /runs
    assert Memory.from_json(json.loads(json.dumps(rebased.to_json()))) == rebased
    # the same readings with no power reading (an older supervisor): told, as before
    assert told(reads(0.6, (AT_RATE[0], None)))


def test_a_throttled_gpu_as_busy_but_drawing_less_is_told() -> None:
    # clocks down: each kernel runs longer (as busy), the draw falls to 63 %
    throttled = told(reads(0.6, (AT_RATE[0], 380.0)))
    unread = told(reads(0.6, (AT_RATE[0], None)))
    assert throttled and throttled[0] == unread[0]


def test_a_waiting_gpu_less_busy_is_told_when_it_would_be_unread() -> None:
    assert told(reads(0.6, (70.0, 560.0)))[0] == told(reads(0.6, (70.0, None)))[0]


def test_a_spinning_collective_reading_busy_at_low_power_is_told() -> None:
    # a collective spinning half the time: 100 % busy, the draw above idle down by a third
    assert told(reads(0.5, (100.0, 420.0)))[0] == told(reads(0.5, (100.0, None)))[0]


def test_one_idle_reading_in_the_sag_does_not_make_heavier_steps_news() -> None:
    obs = []
    for m in range(0, 300, 10):
        # a short save's moment, among the readings kept when the sag is judged (minute 180)
        util, power = (3.0, 80.0) if m == 170 else AT_RATE
        obs.append(
            running(at(m), throughput=RATE if m < 30 else 0.6 * RATE, gpus=[card(util, power)])
        )
    assert told(run_checks(obs)) == []


def test_a_slowdown_after_heavier_steps_is_judged_from_their_rate() -> None:
    # heavier steps at 60 % from minute 30 (the GPU as busy), then from minute 300 the GPU
    # waits: 30 % of the first rate, half the new one
    obs = []
    for m in range(0, 600, 10):
        share, util = (1.0, 95.0) if m < 30 else (0.6, 95.0) if m < 300 else (0.3, 50.0)
        obs.append(running(at(m), throughput=RATE * share, gpus=[card(util, 600.0 * util / 95)]))
    results = run_checks(obs)
    first = told(results)
    assert first and first[0] > 300
    reason = next(f.reason for f in results[first[0] // 10].findings if f.key == "slow")
    assert "50 % of the run's baseline 1.20 steps/s" in reason


def test_with_the_cost_gate_waived_the_gpus_work_waives_nothing() -> None:
    # slow_lost_s 0: what the deadline gate sets when the slowdown makes the run miss its
    # deadline or max_cost; a person can act on that whatever the steps' weight
    assert told(reads(0.6, AT_RATE, policy=HELD_ONLY))


def test_a_gpu_that_says_it_is_throttled_is_told_and_named() -> None:
    results = reads(0.6, AT_RATE, throttle=("sw_power_cap", "hw_thermal"))
    first = told(results)
    assert first
    reason = next(f.reason for f in results[first[0] // 10].findings if f.key == "slow")
    assert reason.endswith("; GPU 0 throttled: hw_thermal")


def test_the_power_cap_a_busy_gpu_meets_is_not_trouble() -> None:
    assert told(reads(0.6, AT_RATE, throttle=("sw_power_cap",))) == []


def test_after_a_ramp_that_made_the_gpu_busier_a_throttle_is_told() -> None:
    # 70 % busy at 300 W, then heavier steps keep it 99 % busy at 500 W at 60 % of the rate
    # (waived: the work at the new rate is the ramp's), then from minute 500 it throttles to
    # 350 W: a third less above idle than the ramp drew, though more than before it
    obs = []
    for m in range(0, 900, 10):
        share, util, power = (
            (1.0, 70.0, 300.0)
            if m < 200
            else (0.6, 99.0, 500.0)
            if m < 500
            else (0.36, 99.0, 350.0)
        )
        obs.append(running(at(m), throughput=RATE * share, gpus=[card(util, power)]))
    results = run_checks(obs)
    first = told(results)
    assert first and first[0] > 500
    assert results[49].memory.work_util_pct == 99.0 and results[49].memory.work_w == 430.0


def test_one_gpu_of_eight_throttled_without_saying_so_is_told() -> None:
    def eight(power_0: float) -> list[dict[str, Any]]:
        return [{**card(95.0, power_0 if i == 0 else 600.0), "index": i} for i in range(8)]

    obs = [
        running(
            at(m), throughput=RATE if m < 30 else 0.6 * RATE, gpus=eight(600 if m < 30 else 330)
        )
        for m in range(0, 300, 10)
    ]
    assert told(run_checks(obs))


def test_readings_in_a_save_or_an_eval_say_nothing_of_the_sags_work() -> None:
    base = Memory(launched_at=T0, work_util_pct=95.0, work_w=530.0)
    training = [
        Sample(at=at(m), reachable=True, gpu_min_pct=95.0, gpu_work_w=530.0) for m in (1, 2)
    ]
    saving = [
        Sample(at=at(m), reachable=True, gpu_min_pct=2.0, gpu_work_w=5.0, explained_idle=True)
        for m in (3, 4, 5)
    ]
    evaluating = [
        Sample(at=at(6), reachable=True, gpu_min_pct=80.0, gpu_work_w=200.0, busy_silent=True)
    ]
    assert as_busy(base, [*training, *saving, *evaluating])
    assert not as_busy(base, [*training[:1], *saving])  # one training reading: too few


def test_a_row_from_an_older_watcher_waives_nothing_until_it_has_learned_the_work() -> None:
    old = Memory(launched_at=T0, baseline_throughput=RATE, baseline_readings=100)
    obs = [
        running(at(m), throughput=RATE if m < 30 else 0.6 * RATE, gpus=[card(*AT_RATE)])
        for m in range(0, 300, 10)
    ]
    # stored before the work was kept, its readings from now on all slow: none teaches it
    assert told(run_checks(obs[3:], memory=old))
    assert not told(run_checks(obs))  # learned from a reading at the rate: waived


def test_a_rate_of_nothing_with_the_gpu_busy_is_told_not_waived() -> None:
    # a step that stopped moving while the GPU computes is a stall's business, never heavier
    # steps: told, and the run's rate is not rebased to nothing
    results = reads(0.0, AT_RATE)
    assert told(results)
    assert results[-1].memory.baseline_throughput == RATE


def test_runs_notes_a_live_run_whose_steps_got_heavier() -> None:
    memory = reads(0.6, AT_RATE)[-1].memory
    record = RunRecord(name="llama-ft", run_dir="/r", launched_at=T0, memory=memory.to_json())
    assert heavier_of(record) == (at(30), RATE, 0.6 * RATE)
    assert heavier_of(replace(record, live=False)) is None
    view = RunView(name="llama-ft", live=True, status_line="-", heavier=heavier_of(record))
    (_, facts) = run_lines(view, at(400))
    assert (
        "steps heavier since 03:30:00Z, GPU as busy: 1.20 steps/s taken as its rate (was 2.00)"
        in facts
    )
    unheavy = reads(0.6, (70.0, 560.0))[-1].memory
    assert heavier_of(replace(record, memory=unheavy.to_json())) is None


def test_the_note_goes_once_the_rate_is_back_near_the_one_before() -> None:
    obs = [
        running(at(m), throughput=RATE * (0.6 if 30 <= m < 300 else 1.0), gpus=[card(*AT_RATE)])
        for m in range(0, 600, 10)
    ]
    results = run_checks(obs)
    noted = [r.memory.heavier_at is not None for r in results]
    assert noted[29] and not noted[-1]  # taken at minute 180, gone after the rate came back
    assert told(results) == []


def recent(util: float, power: float, readings: int = 20, index: int = 0) -> dict[str, Any]:
    """state.json's `gpu_recent`: the supervisor's medians over `readings` heartbeats."""
    medians = {**card(util, power), "index": index}
    return {"readings": readings, "span_s": 15.0 * (readings - 1), "gpus": [medians]}


def scattered(share: float, medians: tuple[float, float] | None) -> list[Assessment]:
    """Every 10 min: the run's rate for 30 min, then `share` of it. Each check's own reading
    scatters (one instant: between kernels, on a batch's gap), alternating high and low around
    the GPU at the run's rate; the supervisor's medians (`gpu_recent`) say AT_RATE before
    minute 30 and `medians` after (none: an older supervisor)."""
    obs = []
    for i, m in enumerate(range(0, 300, 10)):
        util, power = (99.0, 690.0) if i % 2 else (60.0, 360.0)
        said = AT_RATE if m < 30 else medians
        extra = {} if said is None else {"gpu_recent": recent(*said)}
        rate = RATE if m < 30 else RATE * share
        obs.append(running(at(m), throughput=rate, gpus=[card(util, power)], **extra))
    return run_checks(obs)


def test_the_supervisors_medians_judge_the_work_not_one_scattered_instant() -> None:
    # the same scattered instants: heavier steps by the medians (waived), a throttle by them
    # (told); without the medians the instants decide, and their scatter tells the first
    assert told(scattered(0.6, AT_RATE)) == []
    assert told(scattered(0.6, (AT_RATE[0], 380.0)))
    assert told(scattered(0.6, None))


def test_too_few_recent_readings_stand_for_nothing_and_other_gpus_are_not_the_runs() -> None:
    def sample_for(gpu_recent: dict[str, Any]) -> Sample:
        obs = running(at(0), gpus=[card(40.0, 300.0)], gpu_recent=gpu_recent)
        return run_checks([obs])[0].memory.samples[-1]

    few = sample_for(recent(95.0, 600.0, readings=3))
    assert (few.recent_util_pct, lowest_util(few)) == (None, 40.0)
    enough = sample_for(recent(95.0, 600.0))
    assert (enough.recent_util_pct, enough.recent_work_w, lowest_util(enough)) == (
        95.0,
        530.0,
        95.0,
    )
    # medians of a GPU the run does not use (index 3): not this run's work
    other = sample_for(recent(95.0, 600.0, index=3))
    assert (other.recent_util_pct, lowest_util(other)) == (None, 40.0)


def saves_then_throttle(silent_s: float, *, print_every_s: float = 10.0) -> list[Assessment]:
    """Every 10 min, a trainer printing every `print_every_s` (each check `print_every_s` / 2
    after a print); at minutes 50, 110, 170 and 230 the check lands `silent_s` into a checkpoint
    save that followed an eval, the supervisor's medians then the save's first idle readings
    (3.5 % busy, its idle draw). From minute 300 the GPU throttles: 60 % of the rate, as busy,
    its draw above idle at 83 % of the work at the run's rate."""
    obs = []
    for m in range(0, 600, 10):
        saving = m % 60 == 50 and m < 300
        util, power = (3.5, 70.0) if saving else AT_RATE if m < 300 else (95.0, 510.0)
        silent = silent_s if saving else print_every_s / 2
        obs.append(
            running(
                at(m),
                output_at=at(m, seconds=-silent),
                throughput=RATE if m < 300 else 0.6 * RATE,
                gpus=[card(util, power)],
                gpu_recent=recent(util, power),
            )
        )
    return run_checks(obs)


def test_a_check_in_a_saves_first_seconds_does_not_teach_the_gpus_work() -> None:
    # 42 s into a save, the silence is not yet the 2-min window's, but it is past the print
    # gap of a trainer printing every 10 s: its readings may be the save's, and are not
    # learned. Learned, they dragged the work at the run's rate down until the throttle read
    # as heavier steps (as busy, drawing over 85 % of the dragged work) and was never told.
    results = saves_then_throttle(42.0)
    before = results[28].memory  # minute 280: after the four saves
    assert abs((before.work_util_pct or 0) - 95.0) < 1e-9
    assert abs((before.work_w or 0) - 530.0) < 1e-9
    assert before.samples[-1].past_print_gap is False
    assert results[5].memory.samples[-1].past_print_gap is True
    assert told(results) and told(results)[0] > 300


def test_a_rare_printers_checks_still_teach_the_work_and_its_saves_start_is_not_told() -> None:
    # a trainer printing every 200 s is silent 100 s at its checks (under the 2-min window,
    # within its gap): they are training's and teach the work. Where it loses: 42 s into its
    # save is within its print gap too, a print running late for all a check can tell, and the
    # save's first readings are learned
    results = saves_then_throttle(42.0, print_every_s=200.0)
    assert not any(r.memory.samples[-1].past_print_gap for r in results)
    taught = results[4].memory  # minute 40, before the first save
    assert abs((taught.work_util_pct or 0) - 95.0) < 1e-9
    assert abs((taught.work_w or 0) - 530.0) < 1e-9
    dragged = results[28].memory.work_w
    assert dragged is not None and dragged < 530.0
