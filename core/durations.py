"""Human durations (`90m`, `2h`, `1h30m`, `1d`, `45s`) to seconds and back."""

from __future__ import annotations

import re

_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?")


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
