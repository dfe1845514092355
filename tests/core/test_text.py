"""The one cleaning rule for untrusted text (core.text). Pure."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from core.text import MAX_LINE_CHARS, capped_line, capped_lines, clean_line, clean_lines

ROOT = Path(__file__).resolve().parents[2]


def test_escapes_controls_and_redraws_are_removed() -> None:
    assert clean_line("\x1b[1;31mERR\x1b[0m\x00\x1b]0;title\x07 \ud800ok\tx") == "ERR ok    x"
    assert clean_line("10%\r100%\r") == "100%"
    assert clean_line("a\nb") == "a b"


def test_an_element_holding_several_lines_is_split_into_them() -> None:
    assert clean_lines(["one\ntwo", "\x1b[2Kthree"]) == ["one", "two", "three"]


def test_a_huge_line_keeps_its_start_and_its_end() -> None:
    cut = capped_line("start " + "x" * 10_000 + " RuntimeError: the end")
    assert len(cut) <= MAX_LINE_CHARS
    assert cut.startswith("start ") and cut.endswith("RuntimeError: the end") and " … " in cut


def test_a_log_block_splits_on_newlines_only_and_keeps_a_redraws_final_state() -> None:
    assert capped_lines("a\n10%\r50%\r100%\nb\n") == ["a", "100%", "b"]


@given(st.text(max_size=2000))
def test_a_cleaned_line_is_one_printable_line_within_its_cap(text: str) -> None:
    line = capped_line(text)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert len(line) <= MAX_LINE_CHARS


def test_pure_modules_take_the_rule_from_core_text_not_from_the_console_notifier() -> None:
    for module in ("core/messages.py", "bot/render.py", "core/statusline.py"):
        tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
        sources = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "core.console" not in sources, module
