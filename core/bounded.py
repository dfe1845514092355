"""The instance is untrusted input (issue 11): the field types every model of its answers is
built from, each bounded. Pure (pydantic only).

Used by core.protocol (state.json and the probe; it re-exports them) and
core.supervisor_client (the ctl, start and ack answers).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Bounds on every number the instance sends (issue 11): a count, offset or id beyond these is
# refused (it would overflow SQLite's INTEGER or mean a broken supervisor); a reading that is
# not finite or out of range is shown as unknown. NaN, 1e400 and 10**20 never reach the store.
MAX_COUNT = 2**53  # steps, attempts, byte offsets: exact in a float, far below SQLite's 2**63
MAX_PID = 2**31
MAX_READING = 1e12  # MB, steps/s, knob values: anything larger is nonsense, not a measurement


def _finite_reading(value: Any) -> Any:
    """A measurement: non-finite or absurd numbers read as unknown (None); a negative one is
    still refused where the field says so."""
    if type(value) is float:  # nearly every reading: NaN fails both comparisons
        return value if -MAX_READING <= value <= MAX_READING else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # let pydantic say what is wrong with a string or an object
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_READING:
        return None
    return number


def _percent(value: Any) -> Any:
    value = _finite_reading(value)
    return min(100.0, max(0.0, value)) if isinstance(value, float) else value


def clipped(limit: int) -> Any:
    """Text from the instance is cut to a length, never refused for being long."""
    return BeforeValidator(lambda v: v[:limit] if isinstance(v, str) else v)


Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Pid = Annotated[int, Field(ge=0, le=MAX_PID)]
Reading = Annotated[Annotated[float, Field(ge=0)] | None, BeforeValidator(_finite_reading)]
Percent = Annotated[float | None, BeforeValidator(_percent)]
KnobValue = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_READING, le=MAX_READING)]
ShortText = Annotated[str, clipped(4096)]


class InstanceModel(BaseModel):
    """A model of something the instance sent: frozen, unknown keys ignored, no NaN."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)
