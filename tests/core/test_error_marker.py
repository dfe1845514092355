"""core.hard_rules.error_marker, pure: its word pre-check never changes what ERROR_MARKERS
finds. Judged on the recorded corpus (tests/supervisor/corpus/logs: real pip, torch, numpy,
sh... output): whole logs, every line, and every 1,600-character window a probe may carry."""

from __future__ import annotations

from pathlib import Path

from core.hard_rules import ERROR_MARKERS, error_marker

LOGS = sorted((Path(__file__).parents[1] / "supervisor" / "corpus" / "logs").glob("*.log"))


def _same(text: str) -> bool:
    ours, theirs = error_marker(text), ERROR_MARKERS.search(text)
    return (ours and ours.span()) == (theirs and theirs.span())  # None or where it is


def test_the_word_check_finds_what_the_pattern_finds_on_every_recorded_log() -> None:
    assert len(LOGS) > 50
    found = 0
    for log in LOGS:
        text = log.read_text(encoding="utf-8", errors="replace")
        found += ERROR_MARKERS.search(text) is not None
        pieces = [text, *text.splitlines()]
        pieces += [text[i : i + 1600] for i in range(0, len(text), 400)]
        for piece in pieces:
            assert _same(piece), (log.name, piece[:200])
    assert found > 20  # the corpus holds failures, not only clean logs
