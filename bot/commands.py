"""Chat commands as typed values: `parse_command` turns `/cmd@bot args` into one, or raises
UsageError with the line to show. Pure; no aiogram. Run names are only ever looked up.

Called by bot/handlers.py for every message; bot/telegram.py registers COMMANDS with Telegram;
bot/render.py formats durations with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.durations import (
    DURATION_MIN_S,
    EXTEND,
    EXTEND_MAX_S,
    MUTE,
    MUTE_MAX_S,
    DurationError,
    DurationRule,
    format_duration,
)
from core.errors import SleepwatchError

# the bounds and the formatter live in core.durations (one rule for chat and the CLI)
__all__ = ["DURATION_MIN_S", "EXTEND_MAX_S", "MUTE_MAX_S", "format_duration"]

_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?")


class UsageError(SleepwatchError):
    """The text is a command for us but malformed; the message is what the chat is told."""

    permanent = True


@dataclass(frozen=True, slots=True)
class Runs:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    run: str


@dataclass(frozen=True, slots=True)
class Kill:
    run: str


@dataclass(frozen=True, slots=True)
class Teardown:
    run: str


@dataclass(frozen=True, slots=True)
class Keep:
    run: str


@dataclass(frozen=True, slots=True)
class Mute:
    run: str
    seconds: int


@dataclass(frozen=True, slots=True)
class Extend:
    run: str
    seconds: int


Command = Runs | Help | Status | Kill | Teardown | Keep | Mute | Extend

COMMANDS: dict[str, tuple[str, str]] = {
    "runs": ("/runs", "kept instances first, then every run: status line, cost so far"),
    "status": ("/status RUN", "status line, last log lines, cadence, next check"),
    "kill": ("/kill RUN", "stop the run (no retry), after a confirmation"),
    "teardown": ("/teardown RUN", "destroy the run's instance, after a confirmation"),
    "keep": ("/keep RUN", "keep an instance left after its run ended: no more reminders"),
    "mute": ("/mute RUN DURATION", f"silence soft alerts (at most {MUTE.max_s // 3600}h)"),
    "extend": (
        "/extend RUN DURATION",
        "push the deadline, and raise max_cost by DURATION at the hourly price "
        "(2h at $0.50/h adds $1.00), e.g. 90m, 2h, 1h30m, 1d",
    ),
    "help": ("/help", "this list"),
}


def help_text() -> str:
    lines = [f"{usage} - {what}" for usage, what in COMMANDS.values()]
    lines.append(
        "RUN may be a unique prefix of a run's name. DURATION: 90m, 2h, 1h30m, 1d "
        "(a bare number is minutes)."
    )
    return "\n".join(lines)


def parse_duration(text: str, rule: DurationRule) -> int:
    """core.durations (the one rule, shared with the CLI) as a UsageError."""
    try:
        return rule.parse(text)
    except DurationError as exc:
        raise UsageError(str(exc)) from None


def parse_run_name(text: str) -> str:
    if not _RUN_NAME.fullmatch(text):
        raise UsageError(
            f"not a run name: {text[:40]!r} (letters, digits, '.', '_', '-'; at most 64)"
        )
    return text


def parse_command(text: str, *, bot_username: str | None = None) -> Command | None:
    """None when the text is not a command, or is addressed to another bot (`/runs@other`)."""
    words = text.split()
    if not words or not words[0].startswith("/"):
        return None
    head = _COMMAND.fullmatch(words[0])
    if head is None:
        names = " ".join(f"/{name}" for name in COMMANDS)
        raise UsageError(f"not a command: {words[0][:40]!r}\ncommands: {names} (/help says more)")
    name, mention = head.group(1).lower(), head.group(2)
    if mention and bot_username and mention.lower() != bot_username.lower():
        return None
    return _build(name, words[1:])


def _build(name: str, args: list[str]) -> Command:
    if name in ("help", "start"):
        return Help()
    if name not in COMMANDS:
        raise UsageError(f"unknown command /{name}\n{help_text()}")
    usage = COMMANDS[name][0]
    wanted = usage.count(" ")
    if len(args) != wanted:
        raise UsageError(f"usage: {usage}")
    if name == "runs":
        return Runs()
    run = parse_run_name(args[0])
    if name == "status":
        return Status(run)
    if name == "kill":
        return Kill(run)
    if name == "teardown":
        return Teardown(run)
    if name == "keep":
        return Keep(run)
    if name == "mute":
        return Mute(run, parse_duration(args[1], MUTE))
    return Extend(run, parse_duration(args[1], EXTEND))
