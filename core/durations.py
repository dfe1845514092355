"""Human durations (`90m`, `2h`, `1h30m`, `1d`, `45s`) to seconds and back, and the one rule
for the durations a human gives to /extend and /mute (chat and CLI alike): `parse_bounded`."""

from __future__ import annotations

import re

from core.errors import SleepwatchError

DURATION_MIN_S = 60
EXTEND_MAX_S = 7 * 86400
MUTE_MAX_S = 86400
FORMS = "use e.g. 90m, 2h, 1h30m, 1d"

_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?")
# What a human types in chat or on the command line: ASCII digits only.
_TYPED = re.compile(r"(?:([0-9]{1,5})d)?(?:([0-9]{1,5})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,7})s)?")


def parse_duration(text: str) -> float:
    """Parse `1d2h30m15s` (any non-empty subset, in that order) or a bare number of seconds.
    Raises ValueError with a message that shows the accepted forms."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d{1,9}(\.\d+)?", cleaned):
        return float(cleaned)
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text[:40]!r} (use e.g. 90m, 2h, 1h30m, 1d)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


class DurationError(SleepwatchError):
    """A duration a human typed that is malformed or out of bounds; the message says which."""

    permanent = True


def parse_bounded(text: str, *, max_s: int, min_s: int = DURATION_MIN_S) -> int:
    """`1d2h30m15s` (any non-empty subset of the units, in that order) to whole seconds within
    [min_s, max_s]. A bare number is refused: minutes or seconds would be a guess."""
    shown = text.strip()[:20]
    match = _TYPED.fullmatch(text.strip().lower())
    if match is None or not any(match.groups()):
        raise DurationError(f"not a duration: {shown!r} ({FORMS})")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total < min_s:
        raise DurationError(f"{shown!r} is too short (at least {format_duration(min_s)})")
    if total > max_s:
        raise DurationError(f"{shown!r} is too long (at most {format_duration(max_s)})")
    return total


def format_duration(seconds: float) -> str:
    """`5400` -> `1h30m`; under a minute -> `45s`; zero -> `0s`."""
    remaining = int(round(seconds))
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_S.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
