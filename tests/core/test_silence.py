"""A silent trainer, judged on its GPUs and its process tree: stalled (one kill), hung with a
busy GPU (an alert, never a kill), or busy without printing (loading, compiling, saving: left
alone). Table-driven through the real `assess`; every state goes through the JSON contract."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from core.rules import Policy, next_check_s
from tests.core.builders import IDLE_TREE, at, gpu, keys, run_checks, running, tree


class Case(NamedTuple):
    silent_min: float  # minutes since the trainer last printed (it printed at minute 1)
    util_pct: float | None
    state: dict[str, Any]  # the tree's activity as state.json carries it ({}: an old supervisor)
    kill: bool
    findings: set[str]


def busy_cpu(minute: float) -> dict[str, Any]:
    return tree(at(minute), io=True) | {
        "activity": {**tree(at(minute))["activity"], "last_io_at": None}
    }


CASES = {
    # the stall: silent, GPU idle, the tree still
    "silent, idle GPU, idle tree: killed": Case(11, 1, IDLE_TREE, True, {"stall_kill:1"}),
    "silent, no GPU reading, idle tree: killed": Case(11, None, IDLE_TREE, True, {"stall_kill:1"}),
    "not yet the window: nothing": Case(9, 0, IDLE_TREE, False, set()),
    # busy without printing: loading a model, torch.compile, a checkpoint save
    "12 min start-up, idle GPU, CPU busy: left alone": Case(
        12, 0, tree(at(12, seconds=-20), io=False), False, set()
    ),
    "15 min checkpoint save, idle GPU, I/O busy: left alone": Case(
        15, 2, tree(at(15, seconds=-15), cpu=False), False, set()
    ),
    "CPU-bound eval, idle GPU, CPU busy: left alone": Case(40, 0, busy_cpu(40), False, set()),
    "silent an hour although busy: told, not killed": Case(
        61, 0, tree(at(61, seconds=-15)), False, {"stale_output"}
    ),
    # the busy-GPU hang: a deadlock spins the GPU and a CPU thread, but moves no bytes
    "silent, GPU spinning, no I/O: hang alert, no kill": Case(
        13, 100, busy_cpu(13), False, {"hang"}
    ),
    "silent, GPU busy, I/O moving (an eval reading data): nothing": Case(
        20, 90, tree(at(20, seconds=-15)), False, set()
    ),
    "silent, GPU busy under the hang window: nothing yet": Case(
        11, 100, busy_cpu(11), False, set()
    ),
    # an older supervisor (no activity fields): today's alert, a kill only after 3x the window
    "unknown tree, idle GPU, 11 min: today's alert, no kill": Case(
        11, 1, {}, False, {"stale_output"}
    ),
    "unknown tree, idle GPU, 31 min: killed": Case(31, 1, {}, True, {"stall_kill:1"}),
    "unknown tree, busy GPU: today's alert, no kill": Case(13, 97, {}, False, {"stale_output"}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_a_silent_trainer_is_judged_on_gpu_and_process_tree(case: Case) -> None:
    now = case.silent_min + 1
    checks = [
        running(at(1)),
        running(at(now - 2), output_at=at(1), util_pct=case.util_pct, **case.state),
        running(at(now), output_at=at(1), util_pct=case.util_pct, **case.state),
    ]
    if now - 2 <= 1:
        checks = [checks[0], checks[2]]
    result = run_checks(checks)[-1]
    assert (result.kill_attempt == 1) is case.kill
    assert keys(result) == case.findings


def test_a_hang_is_an_alert_that_stays_open_and_is_never_a_kill() -> None:
    results = run_checks(
        [
            running(at(1)),
            *(
                running(at(m), output_at=at(1), util_pct=100, **busy_cpu(m))
                for m in (14, 17, 20, 40)
            ),
        ]
    )
    assert all(r.kill_attempt is None for r in results)
    assert all("hang" in keys(r) for r in results[1:])
    assert "not killed" in next(f for f in results[1].findings if f.key == "hang").reason


def test_a_silent_busy_trainer_is_checked_again_when_the_verdict_could_change() -> None:
    # silent 8 min with the CPU busy: a stall could be due 10 min after the last progress,
    # so the next check comes then, not at the next 30-minute cruise tick
    _, result = run_checks(
        [running(at(1)), running(at(9), output_at=at(1), util_pct=0, **tree(at(9)))]
    )
    assert result.findings == () and result.recheck_s == pytest.approx(600.0)
    assert next_check_s(result, Policy(), at(9)) <= 600.0


def test_one_idle_rank_of_eight_is_seen() -> None:
    ranks = [gpu(100.0, 70000, 81920, i) for i in range(8)]
    ranks[5] = gpu(0.0, 69000, 81920, 5)  # holds its memory, computes nothing
    results = run_checks([running(at(m), gpus=ranks) for m in (20, 23, 26, 31)])
    (finding,) = results[-1].findings
    assert finding.key == "low_gpu" and "utilisation 0% on GPU 5" in finding.reason


def test_spare_gpus_the_run_does_not_use_are_not_idle_ranks() -> None:
    box = [gpu(97.0, 70000, 81920, 0)] + [gpu(0.0, 3, 81920, i) for i in range(1, 8)]
    results = run_checks([running(at(m), gpus=box) for m in (20, 23, 26, 31)])
    assert all(r.findings == () for r in results)


def test_an_idle_gpu_while_loading_or_saving_is_not_low_gpu() -> None:
    # a 15-minute checkpoint write with the GPU idle, seen by checks 5 minutes apart
    results = run_checks(
        [running(at(1))]
        + [
            running(at(m), output_at=at(1), util_pct=1, **tree(at(m, seconds=-15)))
            for m in (5, 10, 15)
        ]
    )
    assert all(r.findings == () for r in results)


def powered(util: float, watts: float) -> list[dict[str, Any]]:
    return [gpu(util, 70000, 81920) | {"power_w": watts, "power_limit_w": 700.0}]


def test_a_gpu_drawing_real_power_is_a_long_eval_not_a_hang() -> None:
    # silent 20 min, GPU busy at 520 W of 700 W, no I/O (the eval set is in memory)
    results = run_checks(
        [running(at(1))]
        + [running(at(m), output_at=at(1), gpus=powered(98, 520), **busy_cpu(m)) for m in (18, 21)]
    )
    assert results[-1].findings == () and results[-1].kill_attempt is None


def test_a_gpu_spinning_at_low_power_is_a_hang_even_without_process_data() -> None:
    # NVIDIA/nccl#968: a collective deadlock reads 100 % at ~70 W; an older supervisor's
    # state has no process tree, the power reading alone tells the spin
    results = run_checks(
        [running(at(1))]
        + [running(at(m), output_at=at(1), gpus=powered(100, 70)) for m in (11, 14)]
    )
    assert "hang" in keys(results[-1]) and results[-1].kill_attempt is None


def test_a_reading_early_in_a_checkpoint_write_is_explained_by_the_later_one() -> None:
    # a check lands 1 min into a checkpoint write (not yet "silent"), the next one 8 min in
    # (explained: the tree writes); then a second checkpoint much later: never low_gpu
    ckpt_1, ckpt_2 = at(40), at(58)
    results = run_checks(
        [
            running(at(30)),
            running(at(41), output_at=ckpt_1, util_pct=2, **tree(at(41))),
            running(at(48), output_at=ckpt_1, util_pct=2, **tree(at(48))),
            running(at(59), output_at=ckpt_2, util_pct=1, **tree(at(59))),
        ]
    )
    assert all(r.findings == () for r in results)


def test_a_network_blip_is_not_news_but_a_lost_host_is_within_the_window() -> None:
    from core.config import ThresholdsConfig
    from tests.core.builders import unreachable

    policy = Policy(thresholds=ThresholdsConfig().thresholds())  # a user's defaults
    blip = run_checks(
        [running(at(0)), unreachable(at(1)), unreachable(at(4)), running(at(9))], policy=policy
    )
    assert all(r.findings == () for r in blip)
    assert blip[1].recheck_s is not None and next_check_s(blip[1], policy, at(1)) <= 600
    lost = run_checks(
        [running(at(0)), unreachable(at(1)), unreachable(at(4)), unreachable(at(11))],
        policy=policy,
    )
    assert [keys(r) for r in lost[1:]] == [set(), set(), {"unreachable"}]


def test_a_slow_decay_is_measured_against_the_run_s_earlier_pace() -> None:
    # throughput falls 5 % a check; a baseline that followed it down would never see "half"
    checks = [running(at(30 * i), throughput=2.0 * (0.95**i)) for i in range(20)]
    results = run_checks(checks)
    assert any("slow" in keys(r) for r in results)
