"""Human durations: `90m`, `2h`, `1h30m`, `1d`, `45s`, a bare number of minutes; and back;
and the bounds of /extend and /mute (core.durations, the one rule for chat, CLI and config)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.durations import (
    EXTEND,
    MUTE,
    DurationError,
    DurationRule,
    format_duration,
    is_bare,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 5400),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("45s", 45),
        ("1d2h3m4s", 93784),
        (" 2H ", 7200),
        ("90", 5400),  # a bare number is minutes, in chat and on the command line alike
        (" 5 ", 300),
        ("0s", 0),
    ],
)
def test_it_parses_the_documented_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "  ", "h", "1x", "30m1h", "-5m", "1.5h", "1h 30m", "soon", "1.5", "٣h", "٩٠"]
)
def test_it_refuses_anything_else_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="use e.g. 90m, 2h, 1h30m, 1d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(5400, "1h30m"), (45, "45s"), (0, "0s"), (-3, "0s"), (86400, "1d")]
)
def test_it_formats_compactly(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=999_999 * 86400))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_format_rounds_to_whole_seconds(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == round(seconds)


@given(st.text(max_size=40))
def test_parse_never_raises_anything_but_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert value >= 0


@given(st.from_regex(r"\A\s*([0-9]{1,4}d)?([0-9]{1,4}h)?([0-9]{1,4}m)?([0-9]{1,4}s)?\s*\Z"))
def test_every_well_formed_duration_parses(text: str) -> None:
    if not text.strip():
        return
    assert parse_duration(text) >= 0


def test_the_bounds_of_extend_and_mute_are_one_rule_each() -> None:
    assert EXTEND.parse("90") == 5400 and MUTE.parse("24h") == 86400
    with pytest.raises(DurationError, match="too long \\(at most 1d\\)"):
        MUTE.parse("1441")
    with pytest.raises(DurationError, match="too short \\(at least 1m\\)"):
        EXTEND.parse("30s")
    with pytest.raises(DurationError, match="too long \\(at most 7d\\)"):
        EXTEND.parse("8d")
    assert MUTE.clamp(3 * 86400) == 86400 and MUTE.clamp(600) == 600


@given(st.text(max_size=30))
def test_a_bounded_duration_is_within_its_bounds_or_a_duration_error(text: str) -> None:
    rule = DurationRule(min_s=60, max_s=3600)
    try:
        seconds = rule.parse(text)
    except DurationError:
        return
    assert 60 <= seconds <= 3600


def test_a_bare_number_is_recognised_as_one() -> None:
    assert is_bare(" 90 ") and not is_bare("90m") and not is_bare("1.5") and not is_bare("")
