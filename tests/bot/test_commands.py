"""The command and duration parsers, by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands import (
    EXTEND_MAX_S,
    MUTE_MAX_S,
    Extend,
    Help,
    Kill,
    Mute,
    Runs,
    Status,
    Teardown,
    UsageError,
    format_duration,
    parse_command,
    parse_duration,
)
from core.durations import EXTEND, MUTE


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 5400),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1m30s", 90),
        ("2H", 7200),
        ("90", 5400),  # a bare number is minutes: what `/extend llama 90` means
    ],
)
def test_durations_people_type(text, seconds):
    assert parse_duration(text, EXTEND) == seconds


@pytest.mark.parametrize(
    "text", ["", "0", "m", "1.5h", "30m2h", "-1h", "1 h", "٣h", "45s", "90.5", "٩٠"]
)
def test_durations_that_are_refused(text):
    with pytest.raises(UsageError):
        parse_duration(text, EXTEND)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/runs", Runs()),
        ("/RUNS@sleepwatch_bot", Runs()),
        ("/start", Help()),
        ("/status llama", Status("llama")),
        ("/kill llama-ft", Kill("llama-ft")),
        ("/teardown  run_2.b ", Teardown("run_2.b")),
        ("/mute llama 24h", Mute("llama", 86400)),
        ("/extend llama 1h30m", Extend("llama", 5400)),
        ("/extend llama 90", Extend("llama", 5400)),
        ("/mute llama 30", Mute("llama", 1800)),
    ],
)
def test_commands(text, command):
    assert parse_command(text, bot_username="sleepwatch_bot") == command


@pytest.mark.parametrize(
    "text",
    [
        "/status",
        "/status a b",
        "/mute llama",
        "/mute llama 25h",
        "/kill ../x",
        "/kill .x",
        "/nope",
        "/ba-d",
        "/extend llama 8d",
        "/mute llama 1441",
    ],
)
def test_malformed_commands_raise_usage_errors(text):
    with pytest.raises(UsageError):
        parse_command(text)


def test_text_that_is_not_a_command_for_us_is_none():
    assert parse_command("hello") is None
    assert parse_command("/runs@other_bot", bot_username="sleepwatch_bot") is None


@given(st.text())
def test_the_command_parser_raises_nothing_but_usage_errors(text):
    try:
        parse_command(text, bot_username="sleepwatch_bot")
    except UsageError:
        pass


@given(
    st.from_regex(r"/(status|kill|teardown|mute|extend|runs) [\S]{0,12}( \S{0,8})?", fullmatch=True)
)
def test_command_shaped_text_raises_nothing_but_usage_errors(text):
    try:
        command = parse_command(text)
    except UsageError:
        return
    assert command is not None


@given(st.text(max_size=30))
def test_the_duration_parser_raises_nothing_but_usage_errors(text):
    try:
        seconds = parse_duration(text, MUTE)
    except UsageError:
        return
    assert 60 <= seconds <= MUTE_MAX_S


@given(st.integers(min_value=60, max_value=EXTEND_MAX_S))
def test_formatted_durations_read_back_exactly(seconds):
    assert parse_duration(format_duration(seconds), EXTEND) == seconds
