"""The one place a wait asked for by a far end (an HTTP Retry-After header, Telegram's
`retry_after`) becomes seconds to sleep: finite, never negative, never longer than a cap.
`sleep(nan)`, `timedelta(seconds=1e20)` or an hour-long park of a teardown must not come from
one odd answer.

Used by core.outbox (Telegram's retry_after) and core.providers.vast (an HTTP Retry-After).
"""

from __future__ import annotations

import math

RETRY_AFTER_CAP_S = 300.0


def retry_after_s(value: object, cap_s: float = RETRY_AFTER_CAP_S) -> float | None:
    """Seconds in [0, cap_s], or None when `value` is absent or not a finite number (nan, inf,
    an HTTP-date, garbage): the caller's own backoff applies then."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond float's range: as long as it gets
        return cap_s if value > 0 else 0.0
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap_s)
