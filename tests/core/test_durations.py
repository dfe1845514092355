"""Human durations: `90m`, `2h`, `1h30m`, `1d`, `45s`, bare seconds; and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.durations import format_duration, parse_duration


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
        ("600", 600),
        ("1.5", 1.5),
        ("0s", 0),
    ],
)
def test_it_parses_the_documented_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "  ", "h", "1x", "30m1h", "-5m", "1.5h", "1h 30m", "soon"])
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


@given(st.from_regex(r"\A\s*(\d{1,4}d)?(\d{1,4}h)?(\d{1,4}m)?(\d{1,4}s)?\s*\Z"))
def test_every_well_formed_duration_parses(text: str) -> None:
    if not text.strip():
        return
    assert parse_duration(text) >= 0
