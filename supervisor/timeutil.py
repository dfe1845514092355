"""UTC timestamps in the one format the watcher reads: ISO-8601, seconds, trailing `Z`.

Used by every supervisor module that writes a time.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso_z(when: Optional[dt.datetime]) -> Optional[str]:
    if when is None:
        return None
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
