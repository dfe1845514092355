"""How a run ends, planned as data. Pure: no I/O, no clock but `now`.

core/decide.py names the ending a check calls for (a deadline passed, the instance lost);
core/exits.py asks this module what the exit means (teardown by policy, the run row's outcome)
and applies it."""

from __future__ import annotations

from core.vocab import RunStatus, is_terminal

DEADLINE = "deadline passed"
LOST = "instance lost"
REQUESTED = "teardown requested"
COST = "max_cost reached"
# How a run torn down before its supervisor ended is recorded (the run row's outcome).
ENDING_OUTCOMES = {
    DEADLINE: "deadline_passed",
    LOST: "instance_lost",
    REQUESTED: "teardown_requested",
    COST: "cost_capped",
}
RETRY_TEARDOWN_S = 600.0


def should_destroy(status: str, *, destroy_on_done: bool, destroy_on_fail: bool) -> bool:
    """Pure teardown policy: done → destroy_on_done; failed or stopped → destroy_on_fail."""
    if status == RunStatus.DONE:
        return destroy_on_done
    return is_terminal(status) and destroy_on_fail
