"""The effects an exit is planned as (core/exit_plan.py) and applied from, in order, by
core/exits.py (`ExitHandler._apply`): save the run row, hold or queue its terminal message,
claim and finish its one-time action; a Step is effects plus the run as it stands after them.
Pure data; core.exit_plan re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.models import OutboundMessage, RunRecord


@dataclass(frozen=True, slots=True)
class SaveRun:
    record: RunRecord


@dataclass(frozen=True, slots=True)
class HoldMessage:
    """The run's terminal message, kept (store meta) until its instance line is known."""

    run: str
    message: OutboundMessage


@dataclass(frozen=True, slots=True)
class Enqueue:
    message: OutboundMessage
    dedupe_key: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ClaimAction:
    run: str
    key: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FinishAction:
    run: str
    key: str
    result: str
    at: datetime


Effect = SaveRun | HoldMessage | Enqueue | ClaimAction | FinishAction


@dataclass(frozen=True, slots=True)
class Step:
    """Effects to apply in order, and the run as it stands once they are."""

    record: RunRecord
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True, slots=True)
class DestroyOutcome:
    line: str  # the summary's "instance" line
    retry: bool  # the destroy failed: the instance is still billing, try again later
    record: RunRecord  # the run as stored after it
    billing: bool = False  # kept by policy: it bills on and nobody else will say so


@dataclass(frozen=True, slots=True)
class Destroy:
    """Destroy the instance (verified); `announce`: a message of its own when it is gone."""

    reason: str
    announce: bool
