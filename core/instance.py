"""What the cloud provider says about an instance the watcher cannot reach over SSH.

Called by core.watcher (read_instance, when SSH failed) and core.decide (instance_finding, the
finding it makes).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ProviderError
from core.models import InstanceInfo, InstanceState, instance_state
from core.ports import Provider
from core.rules import Finding
from core.vocab import LIVE_STATUSES, Condition

LOST_AFTER_CHECKS = 2
"""Checks in a row with SSH failing and the provider saying gone/lost before "instance lost":
one answer (a provider glitch, a stale cache) never tears a run down."""


@dataclass(frozen=True, slots=True)
class InstanceVerdict:
    """`finding` for this check, and `gone_checks`: checks in a row so far that saw the instance
    gone or lost while SSH failed (the watcher keeps it in the run's memory)."""

    finding: Finding | None
    gone_checks: int


async def read_instance(
    provider: Provider, instance_id: str
) -> tuple[InstanceInfo | None, str | None]:
    """(info, None), or (None, error text) when the provider itself could not be read."""
    try:
        return await provider.show(instance_id), None
    except ProviderError as exc:
        return None, str(exc)


def instance_finding(
    instance_id: str,
    info: InstanceInfo | None,
    error: str | None,
    run_status: str,
    gone_checks: int = 0,
) -> InstanceVerdict:
    """Pure; called only for a check whose SSH probe failed. A lost instance (LOST in the
    adapter's mapping, e.g. Vast's exited/offline, or gone) is torn down by the fail policy,
    but only once the provider said so on LOST_AFTER_CHECKS checks in a row; a stopped one
    while the run was live (an outbid interruptible instance) is an alert. A provider that
    cannot be read says nothing: the count neither grows nor restarts, and the unreachable
    rule already speaks."""
    if error is not None:
        return InstanceVerdict(None, gone_checks)
    state = instance_state(info)
    if state not in (InstanceState.GONE, InstanceState.LOST):
        return InstanceVerdict(_stopped(instance_id, info, run_status), 0)
    gone_checks += 1
    if gone_checks < LOST_AFTER_CHECKS:
        return InstanceVerdict(None, gone_checks)
    if info is None or state is InstanceState.GONE:
        reason = f"instance {instance_id} no longer exists"
    else:
        reason = (
            f"instance {instance_id} is {info.status or info.state}: the provider says it will "
            "not come back but it may keep billing"
        )
    return InstanceVerdict(Finding(Condition.INSTANCE_LOST, reason), gone_checks)


def _stopped(instance_id: str, info: InstanceInfo | None, run_status: str) -> Finding | None:
    if info is not None and info.state is InstanceState.STOPPED and run_status in LIVE_STATUSES:
        return Finding(
            Condition.INSTANCE_STOPPED,
            f"instance {instance_id} was stopped while the run was live (outbid?)",
        )
    return None
