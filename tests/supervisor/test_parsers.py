"""Pure parsers: progress, failure classification, pip names, early-stop policy, fix plans."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from supervisor.classify import classify, error_excerpt
from supervisor.config import EarlyStop, parse_config
from supervisor.earlystop import EarlyStopPolicy, trainer_stopped_early
from supervisor.fixes import plan_fix
from supervisor.pipnames import dist_for_module, is_valid_dist
from supervisor.progress import ProgressTracker, last_step, match_step

OOM_TEXT = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
    "capacity of 79.25 GiB of which 1.12 GiB is free."
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b" 17/30 [00:01<00:02, 15.0it/s]", (17, 30)),
        (b"Epoch 3:  45%|####5     | 450/1000 [00:10<00:12, 40.0it/s, v_num=0]", (450, 1000)),
        (b"step 1200/5000 loss=0.3", (1200, 5000)),
        (b"Step: 1200 | loss 0.3", (1200, None)),
        (b"global_step=77", (77, None)),
        (b"{'loss': 0.52, 'learning_rate': 1e-05, 'epoch': 0.5}", None),
        (b"3 steps per second", None),
    ],
)
def test_step_parsers_read_what_real_trainers_print(line: bytes, expected: object) -> None:
    assert match_step(line) == expected


def test_the_users_regex_wins_and_may_name_its_groups() -> None:
    user = re.compile(rb"it=(?P<step>\d+) of (?P<total>\d+)")
    assert match_step(b"it=5 of 9 step 1/2", user) == (5, 9)


def test_the_last_redraw_of_a_tqdm_bar_counts() -> None:
    assert last_step(b"\r 1/30 [\r 2/30 [\r 3/30 [00:01]\n") == (3, 30)


def test_an_eval_bar_does_not_move_the_training_step_back() -> None:
    tracker = ProgressTracker()
    tracker.feed(b"\r 400/1000 [00:10<00:12]\n", now=1.0)
    tracker.feed(b"\r 20/50 [00:01<00:02]\n", now=2.0)
    assert (tracker.step, tracker.total) == (400, 1000)
    tracker.feed(b"\r 500/1000 [00:12<00:10]", now=3.0)  # an open redraw counts at once
    assert tracker.step == 500
    assert tracker.throughput(now=3.0) == pytest.approx(50.0)
    assert tracker.throughput(now=3.0 + 10_000) is None


def test_a_traceback_followed_by_a_tqdm_redraw_is_still_read() -> None:
    tail = [
        "Traceback (most recent call last):",
        '  File "t.py", line 3',
        OOM_TEXT,
        "\r 10/100 [00:03<00:30]",
    ]
    failure = classify(1, tail)
    assert failure.kind == "oom" and OOM_TEXT in failure.excerpt


@pytest.mark.parametrize(
    ("exit_code", "text", "kind"),
    [
        (1, "RuntimeError: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate", "oom"),
        (-9, "step 3", "host_oom"),
        (137, "", "host_oom"),
        (1, "ModuleNotFoundError: No module named 'cv2'", "missing_module"),
        (1, "error: command 'gcc' failed: No such file or directory", "missing_build_tool"),
        (1, "fatal error: Python.h: No such file or directory", "missing_build_tool"),
        (1, "RuntimeError: Ninja is required to load C++ extensions", "missing_build_tool"),
        (1, "OSError: [Errno 28] No space left on device", "disk_full"),
        (-11, "", "signal"),
        (2, "ValueError: nope", "error"),
    ],
)
def test_failures_are_classified_from_exit_code_and_tail(
    exit_code: int, text: str, kind: str
) -> None:
    assert classify(exit_code, text.splitlines()).kind == kind


def test_low_free_disk_is_disk_full_even_without_a_message() -> None:
    assert classify(1, ["boom"], disk_free_mb=10, min_free_disk_mb=100).kind == "disk_full"


def test_the_excerpt_is_the_last_traceback_bounded() -> None:
    tail = ["noise"] * 50 + ["Traceback (most recent call last):"] + ["  frame"] * 30 + ["E: x"]
    excerpt = error_excerpt(tail)
    assert excerpt.startswith("Traceback") and excerpt.endswith("E: x")
    assert len(excerpt.splitlines()) <= 12


@pytest.mark.parametrize(
    ("module", "dist"),
    [
        ("cv2", "opencv-python"),
        ("sklearn.metrics", "scikit-learn"),
        ("PIL", "pillow"),
        ("yaml", "pyyaml"),
        ("flash_attn", "flash-attn"),
        ("einops", "einops"),
        ("_private", None),
        ("os; rm -rf /", None),
    ],
)
def test_import_names_map_to_pip_distributions(module: str, dist: str | None) -> None:
    assert dist_for_module(module) == dist


def test_a_package_name_is_validated_before_pip_sees_it() -> None:
    assert is_valid_dist("opencv-python")
    for bad in ("--index-url=http://x", "a b", "../x", "x;y", "", "http://e/x.whl"):
        assert not is_valid_dist(bad)


def test_the_trainers_own_early_stop_marker_is_recognised() -> None:
    assert trainer_stopped_early(["Epoch 00012: early stopping"])
    assert trainer_stopped_early(
        ["Monitored metric val_loss did not improve. Signaling Trainer to stop."]
    )
    assert not trainer_stopped_early(["early_stopping_patience=3", "step 10/10"])


def test_the_policy_never_fires_before_auto_stop_min_steps() -> None:
    policy = EarlyStopPolicy(EarlyStop("x", "min", 0.0, 2, 100))
    for value in (1.0, 1.1, 1.2, 1.3):
        policy.observe(value)
    assert not policy.should_stop(99) and not policy.should_stop(None)
    assert policy.should_stop(100)


def _cfg(**extra: object):
    doc = {"run": "r", "run_dir": "/tmp/r", "command": "true"}
    doc.update(extra)
    return parse_config(doc)


def test_fix_plans_are_argument_lists_and_each_kind_is_used_once() -> None:
    cfg = _cfg(pip={"command": ["pip3"], "install_args": ["-q"]})
    failure = classify(1, ["ModuleNotFoundError: No module named 'cv2'"])
    plan = plan_fix(failure, cfg, set(), {}, is_root=False, has_apt=False)
    assert plan is not None and plan.commands == [["pip3", "install", "-q", "opencv-python"]]
    assert plan_fix(failure, cfg, {"missing_module"}, {}, False, False) is None
    assert plan_fix(failure, _cfg(fixes=[]), set(), {}, False, False) is None


def test_build_tools_need_root_and_apt_and_ninja_comes_from_pip() -> None:
    failure = classify(1, ["RuntimeError: Ninja is required to load C++ extensions"])
    plan = plan_fix(failure, _cfg(), set(), {}, is_root=True, has_apt=True)
    assert plan is not None and ["apt-get", "install", "-y", "build-essential"] in plan.commands
    assert plan.commands[-1][-2:] == ["install", "ninja"]
    unprivileged = plan_fix(failure, _cfg(), set(), {}, is_root=False, has_apt=True)
    assert unprivileged is not None and len(unprivileged.commands) == 1


def test_the_oom_knob_steps_down_to_its_floor_and_then_no_more() -> None:
    cfg = _cfg(knobs={"eval_batch_size": {"value": 10, "min": 4}})
    oom = classify(1, [OOM_TEXT])
    assert plan_fix(oom, cfg, {"oom"}, {"eval_batch_size": 10}, False, False).knobs == {
        "eval_batch_size": 5
    }
    assert plan_fix(oom, cfg, set(), {"eval_batch_size": 5}, False, False).knobs == {
        "eval_batch_size": 4
    }
    assert plan_fix(oom, cfg, set(), {"eval_batch_size": 4}, False, False) is None


def test_a_step_printed_just_before_a_flood_counts_even_when_the_flood_is_skipped(
    tmp_path: Path,
) -> None:
    # the whole flood lands between two reads: the reader skips to the recent bytes, but the
    # progress line printed just before it must not be lost (it was, under load in CI)
    from types import SimpleNamespace

    from supervisor.attempt import READ_CAP, _AttemptWatch
    from supervisor.progress import ProgressTracker

    log = tmp_path / "1.log"
    log.write_bytes(b"step 7/9\n" + b"x" * (READ_CAP + 1024))
    state = SimpleNamespace(
        step=None, total_steps=None, last_step_at=None, throughput=None, last_output_at=None
    )
    sup = SimpleNamespace(
        config=SimpleNamespace(progress_regex=None, early_stop=None, run_dir=str(tmp_path)),
        state=state,
        clock=lambda: "now",
        mark_dirty=lambda: None,
    )
    watch = _AttemptWatch(sup, str(log), ProgressTracker(None))  # type: ignore[arg-type]
    try:
        watch.read_new()
    finally:
        watch.close()
    assert (state.step, state.total_steps) == (7, 9)


# a real plain loop that logs every STRIDE steps (tests/supervisor/corpus: pg_plain_every_5,
# `step N/60 loss=...`)
EVERY_5 = (Path(__file__).parent / "corpus/logs/pg_plain_every_5.log").read_bytes().splitlines()
STRIDE = 5


def _print_line(n: int) -> bytes:
    """The recorded line of the trainer's n-th print (step n x STRIDE)."""
    return EVERY_5[n - 1] + b"\n"


def _printing_every(gaps: list[float]) -> ProgressTracker:
    """A tracker fed the trainer's prints (STRIDE steps apart) at each of `gaps` apart."""
    tracker, now = ProgressTracker(window_s=120.0), 0.0
    tracker.feed(_print_line(1), now=now)
    for n, gap in enumerate(gaps, start=2):
        now += gap
        tracker.feed(_print_line(n), now=now)
    return tracker


def test_a_trainer_printing_every_few_minutes_has_a_throughput() -> None:
    tracker = _printing_every([300.0, 360.0])  # moves at 0, 300, 660 s
    assert tracker.step == 3 * STRIDE
    assert tracker.throughput(now=700.0) == pytest.approx(2 * STRIDE / 660)
    assert tracker.throughput(now=660.0 + 2 * 360.0) == pytest.approx(2 * STRIDE / 660)
    assert tracker.throughput(now=660.0 + 2 * 360.0 + 1) is None  # silent for two gaps


def test_a_rare_printer_back_from_an_eval_is_not_read_slow() -> None:
    tracker = _printing_every([300.0, 1500.0])  # a 20-min eval in its second gap
    assert tracker.throughput(now=1850.0) is None
    tracker.feed(_print_line(4), now=2100.0)  # and its next gap a usual one
    assert tracker.throughput(now=2150.0) is None  # 1500 s against 300 s: not alike yet


def test_a_frequent_printer_silent_for_a_window_has_no_throughput() -> None:
    tracker = _printing_every([1.0, 1.0, 1.0])
    assert tracker.throughput(now=3.5) == pytest.approx(STRIDE)
    assert tracker.throughput(now=3.0 + 121) is None
    tracker.feed(_print_line(5), now=600.0)  # back from a 10-min eval: one move
    assert tracker.throughput(now=601.0) is None
