"""What the cloud provider says about an instance the watcher cannot reach over SSH."""

from __future__ import annotations

from core.errors import ProviderError
from core.models import InstanceInfo
from core.ports import Provider
from core.rules import Finding

LIVE_STATUSES = frozenset({"starting", "running", "retrying", "launching", "unreachable"})


async def read_instance(
    provider: Provider, instance_id: str
) -> tuple[InstanceInfo | None, str | None]:
    """(info, None), or (None, error text) when the provider itself could not be read."""
    try:
        return await provider.show(instance_id), None
    except ProviderError as exc:
        return None, str(exc)


def instance_finding(
    instance_id: str, info: InstanceInfo | None, error: str | None, run_status: str
) -> Finding | None:
    """Pure. A lost instance (exited/unknown/offline, or gone) is torn down by the fail policy;
    a stopped one while the run was live (an outbid interruptible instance) is an alert."""
    if error is not None:
        return None  # the provider is down too: the unreachable rule already speaks
    if info is None:
        return Finding("instance_lost", f"instance {instance_id} no longer exists")
    if info.lost:
        return Finding(
            "instance_lost",
            f"instance {instance_id} is {info.actual_status}: Vast says it will not come back "
            "but it may keep billing",
        )
    if info.actual_status == "stopped" and run_status in LIVE_STATUSES:
        return Finding(
            "instance_stopped",
            f"instance {instance_id} was stopped while the run was live (outbid?)",
        )
    return None
