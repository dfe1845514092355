"""core/supervisor_answer's depth bound, pure: brackets inside JSON strings (escaped quotes
too) are text, nesting counts only outside them, and the fast path (strings dropped in C,
then a count) decides exactly as a token-by-token walk does."""

from __future__ import annotations

import json
import random
import re

import pytest

from core.errors import ProtocolError
from core.supervisor_answer import MAX_DEPTH, _deeper_than, session_line

# a string (an unterminated one runs to the end of the line) or one bracket
_TOKENS = re.compile(rb'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)|[\[\]{}]')


def walked(data: bytes, limit: int) -> bool:
    """The plain definition: walk every string-or-bracket token, count the depth."""
    depth = 0
    for token in _TOKENS.finditer(data):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


def test_brackets_in_strings_are_text_and_nesting_outside_them_counts() -> None:
    text = json.dumps({"log": "[[[[{{{{" * 20 + '\\"]]]' + '"', "gpus": [{"i": [1]}]}).encode()
    assert not _deeper_than(text, 4)  # { [ { [
    assert _deeper_than(text, 3)
    assert _deeper_than(b"[" * 40 + b"]" * 40, MAX_DEPTH)
    assert not _deeper_than(b"[]" * 400, 1)  # many brackets, never deep
    with pytest.raises(ProtocolError, match="nests deeper than 32"):
        session_line(b'{"a":' * 33 + b"1" + b"}" * 33)


def test_the_fast_path_decides_as_the_walk_does_on_random_bracket_soup() -> None:
    rng = random.Random(16)
    alphabet = b'[]{}"\\a,:1 '
    for _ in range(20_000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 48)))
        limit = rng.choice((0, 1, 2, 3, 5))
        assert _deeper_than(data, limit) == walked(data, limit), (data, limit)


def test_quotes_never_closed_are_read_in_one_pass() -> None:
    """`"` then 1,000,000 escaped quotes and no closing one: a string pattern that must find
    its closing quote backtracked to the end of the line from every quote (8 s for 40 KB,
    days for the 4 MiB a line may hold, on the loop). Now the line is refused at once."""
    hostile = b'"' + b'\\"' * 1_000_000
    assert not _deeper_than(hostile + b"[[[[", 3)  # the open string runs to the end
    with pytest.raises(ProtocolError, match="unreadable"):
        session_line(hostile)
