"""core/supervisor_answer's depth bound, pure: brackets inside JSON strings (escaped quotes
too) are text, nesting counts only outside them, and the depth counted on the decoded answer
decides exactly as a token-by-token walk of its text does."""

from __future__ import annotations

import json
import random
import re

import pytest

from core.errors import ProtocolError
from core.supervisor_answer import MAX_DEPTH, nests_deeper, read_answer, session_line

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
    doc = {"log": "[[[[{{{{" * 20 + '\\"]]]', "gpus": [{"i": [1]}]}
    assert walked(json.dumps(doc).encode(), 4) is False  # the definition agrees: { [ { [
    assert not nests_deeper(doc, 4)
    assert nests_deeper(doc, 3)
    assert nests_deeper(json.loads("[" * 40 + "]" * 40), MAX_DEPTH)
    assert not nests_deeper(json.loads("[" + "[]," * 400 + "[]]"), 2)  # wide, never deep
    assert not nests_deeper("[[[[", 0) and not nests_deeper(7, 0)  # scalars have no depth
    with pytest.raises(ProtocolError, match="nests deeper than 32"):
        session_line(b'{"a":' * 33 + b"1" + b"}" * 33)
    session_line(b'{"a":' * 32 + b"1" + b"}" * 32)  # 32 deep: the limit itself is taken


def _random_doc(rng: random.Random, depth: int = 0) -> object:
    """JSON values whose strings are full of brackets, quotes and backslashes."""
    roll = rng.random()
    if depth > 7 or roll < 0.3:
        return "".join(rng.choice('[]{}"\\a,: ') for _ in range(rng.randint(0, 6)))
    if roll < 0.4:
        return rng.choice((1, -2.5, True, None))
    items = [_random_doc(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.7:
        return items
    return {"k" + str(i) + rng.choice("[{\\"): item for i, item in enumerate(items)}


def test_the_decoded_depth_decides_as_the_walk_of_the_text_does() -> None:
    rng = random.Random(16)
    for _ in range(5_000):
        text = json.dumps(_random_doc(rng), ensure_ascii=rng.random() < 0.5)
        limit = rng.choice((0, 1, 2, 3, 5))
        assert nests_deeper(json.loads(text), limit) == walked(text.encode(), limit), text


def test_deep_beyond_the_decoders_own_bound_is_refused_as_deep() -> None:
    """50,000 levels: json stops at its recursion bound (RecursionError), read as too deep."""
    deep = b"[" * 50_000 + b"]" * 50_000
    with pytest.raises(ProtocolError, match="nests deeper than 32"):
        session_line(deep)
    with pytest.raises(ProtocolError, match="supervisor answer nests deeper than 32"):
        read_answer(b"@@sleepwatch-answer-v1@@\n" + deep + b"\n")


def test_quotes_never_closed_are_read_in_one_pass() -> None:
    """`"` then 1,000,000 escaped quotes and no closing one: a string pattern that must find
    its closing quote backtracked to the end of the line from every quote (8 s for 40 KB,
    days for the 4 MiB a line may hold, on the loop). Now the line is refused at once."""
    hostile = b'"' + b'\\"' * 1_000_000
    with pytest.raises(ProtocolError, match="unreadable"):
        session_line(hostile + b"[[[[")
    with pytest.raises(ProtocolError, match="unreadable"):
        session_line(hostile)
