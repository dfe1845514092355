"""Human durations (`90m`, `2h`, `1h30m`, `1d`, `45s`, `90`) to seconds and back: the ONE
parser, and the bounds of each duration a human gives. Pure.

Who calls it: chat's /extend and /mute (bot/commands.py, as a UsageError) and the CLI's
`sleepwatch extend` (core/cli.py) through `EXTEND.parse` / `MUTE.parse`, so the same text gets
the same answer and the same bounds everywhere; the config (core/config.py) for duration
strings; WatcherControl (core/control.py) bounds a mute it is handed with `MUTE.clamp`; the
message builders and renderers format with `format_duration`.

A bare number is MINUTES: `/extend llama 90` is what a person types meaning an hour and a half
(a deadline or a mute is never a matter of seconds). In the config file a TOML number is
seconds (the key's unit), so a quoted bare number there is refused as ambiguous (config.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from core.errors import SleepwatchError

BARE_UNIT_S = 60  # a bare number is minutes
FORMS = "use e.g. 90m, 2h, 1h30m, 1d"

_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# ASCII digits only (a Unicode digit such as '٣' is not a duration), units in this order
_DURATION = re.compile(r"(?:([0-9]{1,7})d)?(?:([0-9]{1,7})h)?(?:([0-9]{1,7})m)?(?:([0-9]{1,7})s)?")
_BARE = re.compile(r"[0-9]{1,7}")


class DurationError(SleepwatchError, ValueError):
    """A duration a human typed that is malformed or out of bounds; the message says which.
    A ValueError too, so a pydantic validator reports it against its key."""

    permanent = True


def is_bare(text: str) -> bool:
    """A number without a unit (read as minutes by `parse_duration`)."""
    return _BARE.fullmatch(text.strip()) is not None


def parse_duration(text: str) -> int:
    """`1d2h30m15s` (any non-empty subset of the units, in that order, case-insensitive) or a
    bare number of minutes, to whole seconds. Raises DurationError showing the accepted forms."""
    cleaned = text.strip().lower()
    if _BARE.fullmatch(cleaned):
        return int(cleaned) * BARE_UNIT_S
    match = _DURATION.fullmatch(cleaned)
    if match is None or not any(match.groups()):
        raise DurationError(f"not a duration: {text.strip()[:20]!r} ({FORMS})")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True, slots=True)
class DurationRule:
    """The bounds of the durations a human gives for one purpose."""

    min_s: int
    max_s: int

    def parse(self, text: str) -> int:
        """Whole seconds within [min_s, max_s]; DurationError naming the bound otherwise."""
        total = parse_duration(text)
        shown = text.strip()[:20]
        if total < self.min_s:
            raise DurationError(f"{shown!r} is too short (at least {format_duration(self.min_s)})")
        if total > self.max_s:
            raise DurationError(f"{shown!r} is too long (at most {format_duration(self.max_s)})")
        return total

    def clamp(self, seconds: float) -> float:
        return min(max(seconds, float(self.min_s)), float(self.max_s))


EXTEND = DurationRule(min_s=60, max_s=7 * 86400)  # /extend, `sleepwatch extend`
MUTE = DurationRule(min_s=60, max_s=86400)  # /mute: soft alerts only, at most a day

# The bounds by name, for callers that show them.
DURATION_MIN_S = EXTEND.min_s
EXTEND_MAX_S = EXTEND.max_s
MUTE_MAX_S = MUTE.max_s


def format_duration(seconds: float) -> str:
    """`5400` -> `1h30m`; under a minute -> `45s`; zero or less -> `0s`. Rounded to whole
    seconds; `parse_duration` reads it back exactly."""
    remaining = int(round(seconds))
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_S.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def local_time(at: datetime, now: datetime, tz: tzinfo) -> str:
    """A moment as a person reads it, in their zone: `05:12 CET`, with the date unless today."""
    local = at.astimezone(tz)
    shape = "%H:%M %Z" if local.date() == now.astimezone(tz).date() else "%Y-%m-%d %H:%M %Z"
    return local.strftime(shape)
