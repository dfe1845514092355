"""ProgressTracker's flood path (one pass over a chunk of many lines) reads exactly what the
line-by-line path reads: every recorded log of the corpus fed both ways, in reads of many
lines, and floods built to make the one-pass path step aside."""

from __future__ import annotations

from pathlib import Path

import pytest

import supervisor.progress as progress
from supervisor.progress import ProgressTracker

LOGS = sorted((Path(__file__).parent / "corpus" / "logs").glob("*.log"))


def replayed(data: bytes, chunk: int) -> list[tuple[int | None, int | None]]:
    tracker, seen = ProgressTracker(), []
    for start in range(0, len(data), chunk):
        tracker.feed(data[start : start + chunk], start / 1e4)
        seen.append((tracker.step, tracker.total))
    return seen


@pytest.mark.parametrize("log", LOGS, ids=[p.stem for p in LOGS])
def test_a_recorded_log_reads_the_same_by_the_flood_path(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = log.read_bytes()
    flood = replayed(data, 16384)
    monkeypatch.setattr(progress, "FLOOD_SEGMENTS", 1 << 30)  # every line, one by one
    assert flood == replayed(data, 16384)


def flood(lines: list[str]) -> ProgressTracker:
    tracker = ProgressTracker()
    tracker.feed(("\n".join(lines) + "\n").encode(), 0.0)
    return tracker


def test_a_flood_of_steps_ends_at_its_newest_step() -> None:
    tracker = flood([f"step {i}/5000 loss=0.5" for i in range(1, 1001)])
    assert (tracker.step, tracker.total) == (1000, 5000)


def test_a_larger_total_anywhere_in_a_flood_is_read_line_by_line() -> None:
    # a data bar with a larger total, then the training bar: the line-by-line rules decide
    lines = ["Map: 100%|####| 90000/90000 [00:01<00:00]"]
    lines += [f" {i}/500 [00:0{i % 10}<00:10, 2.0it/s]" for i in range(1, 200)]
    tracker = flood(lines)
    assert (tracker.step, tracker.total) == (199, 500)


def test_a_smaller_bar_after_the_training_bar_in_a_flood_does_not_move_the_step() -> None:
    tracker = ProgressTracker()
    tracker.feed(b"".join(b" %d/500 [00:01<00:10]\n" % i for i in range(1, 100)), 0.0)
    lines = [f" {i}/500 [00:01<00:10]" for i in range(100, 200)]
    lines += [f" {i}/20 [00:01<00:10]" for i in range(1, 80)]  # an eval bar drawn after it
    tracker.feed(("\n".join(lines) + "\n").encode(), 1.0)
    assert (tracker.step, tracker.total) == (199, 500)
