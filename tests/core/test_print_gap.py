"""A trainer's print gap (core.hard_rules.unusual_silence_s) and what the low-GPU onset does
with it (core/gpu_onset.py). Found by the detection bench's rare-printer families: a starved
GPU in a trainer that prints every 2-8 min was told 122 min after training began (p95), and
after 402 min when its reads now and then land on a batch: the gap, learned as the least
silence x (n + 1), was often a fraction of the true one, so the starved silences read as saves.
Pure: data and an injected `now`, no I/O."""

from __future__ import annotations

from core.findings import Thresholds
from core.hard_rules import unusual_silence_s
from core.rules import Assessment, Observation, Policy
from core.vocab import Condition
from tests.core.builders import at, run_checks, running, tree

CAP_S = Thresholds().stall_after_s / 2  # the longest gap learned: 5 min
WINDOW_S = 120.0  # the explained-silence window: the gap of a trainer that prints often


def rare(minute: float, util: float, printed: float) -> Observation:
    """A reading of a trainer that last printed at `printed`, its tree busy (the dataloader)."""
    return running(
        at(minute), util_pct=util, throughput=2.0, output_at=at(printed), **tree(at(minute))
    )


def gap_after(checks: list[Observation]) -> float:
    return unusual_silence_s(run_checks(checks)[-1].memory, 1, Thresholds())


def told_at(results: list[Assessment]) -> int | None:
    told = (i for i, r in enumerate(results) if Condition.LOW_GPU in {f.key for f in r.findings})
    return next(told, None)


def test_one_check_just_after_a_print_does_not_make_a_rare_printer_frequent() -> None:
    # prints every 4 min; one check 10 s after a print, the others 1.5-2.5 min into the gap:
    # twice the median silence, 3.5 min (the least x 5 made it 50 s: the window, every silence
    # "a save")
    silences = ((0, 1), (10, 1 / 6), (20, 2), (30, 1.5), (40, 2.5))
    assert gap_after([rare(m, 90, m - s) for m, s in silences]) == 210.0


def test_a_silence_first_seen_by_a_check_no_longer_kept_is_not_learned_from() -> None:
    # a trainer printing every few seconds, read 6 s into a save and again 3 min later; once
    # the first of those is out of the eight kept checks, the second's silence is not fresh
    checks = [rare(0, 90, 0), rare(10, 5, 9.9), rare(13, 5, 9.9)]
    checks += [rare(m, 90, m - s) for m, s in ((23, 0.05), (33, 3), (43, 0.05), (53, 3))]
    checks += [rare(m, 90, m - s) for m, s in ((63, 0.05), (73, 3), (83, 0.05))]
    assert gap_after(checks) == WINDOW_S


def test_a_rare_printers_first_idle_readings_count_in_full_once_its_gap_is_known() -> None:
    # starved from the start, printing every 5 min, read 3-3.5 min into each gap: its first
    # readings were judged on the 2-min window (a save's, half weight); from the fifth its gap
    # is known (cap 5 min) and they are starved readings: told at the sixth, not the seventh
    silences = ((0, 3), (10, 3), (20, 3.5), (30, 3), (40, 3.5), (50, 3), (60, 3.5))
    results = run_checks([rare(m, 5, m - s) for m, s in silences])
    assert results[3].memory.samples[-1].explained_idle  # gap not yet learned
    assert told_at(results) == 5


def test_an_onsets_recheck_never_waits_past_the_hold() -> None:
    # a stall threshold of an hour lets the learned gap reach 30 min, past twice the 10-min
    # hold, which would restart the onset at every reading: the recheck stays at the hold
    t = Thresholds(stall_after_s=3600.0)
    healthy = [rare(m, 90, m - 20) for m in (0, 30, 60, 90, 120)]
    results = run_checks([*healthy, rare(150, 5, 128)], policy=Policy(thresholds=t))
    assert unusual_silence_s(results[-1].memory, 1, t) > t.soft_hold_s
    assert results[-1].recheck_s == t.soft_hold_s


def test_a_low_reading_of_a_rare_printer_is_looked_at_again_in_its_next_silence() -> None:
    # a healthy trainer printing every 4-5 min (gap learned: 5 min), then its GPU reads idle:
    # a reading 200 s later would land in the same silence, which counts once
    healthy = [rare(m, 90, p) for m, p in ((0, -10), (10, 7), (20, 16), (30, 27), (40, 36))]
    results = run_checks([*healthy, rare(50, 5, 46)])
    assert results[-1].recheck_s == CAP_S
