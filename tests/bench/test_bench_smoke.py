"""Each bench runs end to end in its quick mode. Figures are never asserted, only that the
numbers exist and the pieces were really exercised."""

from __future__ import annotations

import pytest

from bench import detection, fleet, report
from bench.detection_families import FAMILIES, make_family_run
from bench.detection_model import make_run
from bench.detection_recent import recent_doc
from bench.detection_sim import POLICIES, simulate
from core.rules import Policy


def test_the_same_seed_gives_the_same_fleet():
    first = [make_run(i, 3) for i in range(20)]
    again = [make_run(i, 3) for i in range(20)]
    assert [(r.kind, r.event_s) for r in first] == [(r.kind, r.event_s) for r in again]


def test_a_hang_is_caught_and_killed_by_the_wait_channel_policy():
    index = next(i for i in range(200) if make_run(i, 7).kind == "hang")
    watching = next(w for w in POLICIES if w.name == "adaptive_wait")
    outcome = simulate(make_run(index, 7), watching, Policy())
    assert any(k.startswith("stall_kill:") for k in outcome.alert_keys)
    assert outcome.detected_s is not None


def test_detection_quick_reports_every_policy_and_every_family():
    doc = detection.main(quick=True, runs=40, family_runs=3, write=False)
    assert set(doc["policies"]) == {w.name for w in POLICIES}
    assert doc["policies"]["adaptive_wait"]["checks_per_run_day"] > 0
    assert set(doc["families"]) == {f.name for f in FAMILIES}
    for family in doc["families"].values():
        assert set(family) == set(detection.FAMILY_POLICIES)
        assert all(f["runs"] == 3 for f in family.values())
    assert any(g["goal"].startswith("busy_gpu_hang") for g in doc["goals"])


def test_a_busy_gpu_hang_is_alerted_and_never_killed():
    run = make_family_run("busy_gpu_hang", 0, 7)
    watching = next(w for w in POLICIES if w.name == "adaptive_wait")
    outcome = simulate(run, watching, detection.bench_policy())
    assert "hang" in outcome.alert_keys
    assert outcome.kills == 0 and outcome.detected_s is not None


def test_a_slow_silent_startup_is_not_killed():
    watching = next(w for w in POLICIES if w.name == "adaptive_wait")
    for index in range(3):
        run = make_family_run("slow_startup", index, 7)
        assert sum(run.startup_s) > 480  # silent for 8+ minutes with the GPU idle
        outcome = simulate(run, watching, detection.bench_policy())
        assert outcome.kills == 0 and outcome.false_alerts == 0


def test_bench_readme_figures_are_generated_from_the_results():
    # regenerate with `python -m bench.report` after changing bench/results/
    assert report.fresh()


@pytest.mark.slow
def test_fleet_quick_runs_the_real_serve_over_real_ssh():
    doc = fleet.main(sizes=(4,), quick=True, write=False, window_s=6.0, samples=5)
    result = doc["results"][0]
    assert result["start"]["first_checks"] == 4 and result["checks"] > 0
    assert result["check_samples"] > 0 and result["bare_samples"] > 0
    assert result["bare_errors"] == 0
    # probes went over the hosts' supervisor sessions (serve's way), execs the fallback
    probes = result["execs"].get("probe", 0) + result["session_requests"].get("probe", 0)
    assert probes > 0 and result["execs_per_check"] is not None
    assert result["window_a"]["loop_lag"]["n"] > 0 and result["cipher"]


def test_with_a_session_the_checks_are_requests_and_the_execs_only_open_it():
    run = make_run(next(i for i in range(200) if make_run(i, 7).kind == "healthy"), 7)
    by_name = {w.name: w for w in POLICIES}
    session = simulate(run, by_name["adaptive_wait"], Policy())
    execs = simulate(run, by_name["adaptive_wait_no_tree"], Policy())  # an older supervisor
    assert session.checks > 1 and session.session_requests > session.checks  # + waits, ack
    assert session.execs == 1 + len(run.dark) + session.kills
    assert execs.session_requests == 0 and execs.execs > execs.checks


def test_a_jittery_trainer_prints_at_uneven_gaps_never_in_the_future():
    run = make_family_run("jittery_rare_long_checkpoints", 0, 7)
    every, jitter = run.output_every_s, run.output_jitter
    prints = sorted({run.last_print(0.0, t) for t in range(0, 6 * 3600, 7)})
    gaps = [b - a for a, b in zip(prints[1:], prints[2:], strict=False)]
    assert all(run.last_print(0.0, t) <= t for t in range(0, 6 * 3600, 7))
    assert all(every * (1 - jitter) - 7 <= g <= every * (1 + jitter) + 7 for g in gaps)
    assert max(gaps) - min(gaps) > every * jitter / 2  # uneven, not a fixed period


def test_a_rare_printers_rate_is_read_by_the_supervisors_own_tracker():
    # supervisor/progress.py reads a trainer that moves its step less often than its window
    # over its last three moves, while their gaps are alike: after an eval and a save, none
    # until the third move of training since (a gap that held them is not the rate)
    run = make_family_run("rare_logger", 0, 7)
    every = run.output_every_s
    assert every > 120
    back = next(p for p in run.phases[2:] if p.mode == "train" and p.end > p.start + 4 * every)
    assert run.phases[run.phases.index(back) - 1].mode == "ckpt"
    rate = [run.state_doc(back.start + k * every)["throughput"] for k in (2.5, 3.2, 3.9)]
    assert rate[0] is None and rate[1] is not None and rate[2] is not None
    assert run.state_doc(back.start + 2.5 * every)["throughput"] is None  # read out of order


def test_the_simulated_supervisors_medians_leave_out_a_silence_and_keep_each_reading():
    # supervisor/gpurecent.py: every heartbeat of the last 5 min (20) taken within the print
    # gap of a print; an eval's reading after that is not training's. Checks whose windows
    # overlap see the very readings the first drew
    run = make_family_run("input_bound", 0, 7)
    ev = next(p for p in run.phases if p.mode == "eval" and p.end - p.start > 400)
    train = next(p for p in run.phases if p.mode == "train" and p.end - p.start > 900)
    cache: dict[float, tuple[float, float] | None] = {}
    starved = recent_doc(run, train.start + 600, cache)
    assert starved["readings"] == 20 and starved["gpus"][0]["util_pct"] < 10  # 3-9 % busy
    assert recent_doc(run, ev.start + 400, cache) is None  # 400 s into an eval: none counts
    drawn = dict(cache)
    recent_doc(run, train.start + 660, cache)
    assert all(cache[b] == r for b, r in drawn.items())


def test_the_simulated_supervisor_drops_a_saves_first_readings_once_it_outlasts_the_gap():
    # supervisor/gpurecent.py keeps a silence's first minute while it could be a late print,
    # and drops it once the silence outlasts the gap: a check just after a save reads training
    run = make_family_run("input_bound", 0, 7)
    ckpt = next(
        p
        for p, after in zip(run.phases, run.phases[1:], strict=False)
        if p.mode == "ckpt" and p.end - p.start > 90 and after.mode == "train"
    )

    def beats(t: float, modes: set[str]) -> int:
        first = (t - 300) // 15 * 15 + 15
        window = [first + 15 * i for i in range(int((t - first) // 15) + 1)]
        return sum(run.phase_at(b).mode in modes for b in window)

    after_save = ckpt.end + 120
    assert beats(after_save, {"ckpt"}) >= 4
    assert recent_doc(run, after_save, {})["readings"] == beats(after_save, {"train"})
    early = ckpt.start + 40  # 40 s in, it could still be a print running late
    kept = beats(early, {"train", "ckpt"})
    assert beats(early, {"ckpt"}) == 3 and recent_doc(run, early, {})["readings"] == kept


def test_the_simulated_supervisors_readings_start_afresh_with_a_new_attempt():
    # supervisor/gpurecent.py clears its readings when the attempt changes: a check in the
    # retry's first minutes reads none of the crashed attempt's training
    run = make_family_run("input_bound_retry", 0, 7)
    train = next(p for p in run.phases if p.attempt == 2 and p.mode == "train")
    crash = next(p for p in run.phases if p.status == "retrying").start
    t = train.start + 90
    assert crash > t - 300  # the window reaches back into the first attempt's training
    retried = [b for b in range(0, int(t) + 1, 15) if b >= train.start]  # its heartbeats
    assert len(retried) >= 4 and recent_doc(run, t, {})["readings"] == len(retried)
