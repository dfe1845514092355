"""Low disk on the instance, pure: an early alert before a full disk becomes a failed attempt.

The probe reads the free space under the run's folder (`disk_free_mb`). Below `disk_low_mb` the
condition opens one alert (core/transitions.py: one per episode); it clears, with one recovery
message, only once the free space is back above the threshold by RECOVER_FACTOR, so a disk
hovering at the line does not alert at every checkpoint write. A probe without the reading
says nothing: an open alert stays open. Called by core/watcher.py once per check."""

from __future__ import annotations

from dataclasses import dataclass

from core.findings import Finding
from core.vocab import Condition

RECOVER_FACTOR = 1.2


@dataclass(frozen=True, slots=True)
class DiskVerdict:
    finding: Finding | None = None
    unjudged: bool = False  # no reading: an open alert must not close on it


def judge_disk(free_mb: float | None, threshold_mb: float, *, alerting: bool) -> DiskVerdict:
    """`alerting`: the run has an open disk_low alert (the threshold to clear it is higher)."""
    if threshold_mb <= 0:
        return DiskVerdict()
    if free_mb is None:
        return DiskVerdict(unjudged=True)
    line = threshold_mb * RECOVER_FACTOR if alerting else threshold_mb
    if free_mb >= line:
        return DiskVerdict()
    reason = (
        f"the instance has {_size(free_mb)} of disk free (alert below {_size(threshold_mb)}): "
        "a checkpoint may fail to write; free space or move outputs off before it is full"
    )
    return DiskVerdict(Finding(Condition.DISK_LOW, reason))


def _size(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"
