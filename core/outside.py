"""The findings of a check that `assess` cannot see, pure: the cloud provider's word on an
instance SSH could not reach, the run's deadline, its cost cap and the instance's free disk.

Called by core/decide.py only, once per check, before `assess` (whose cadence must count a
lasting one); decide merges them with assess's findings. Each judge lives in its own module
(core/instance.py, core/deadline.py, core/cost.py, core/disk.py); this one feeds them the run's
row and memory and says which ending, if any, they call for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from core.cost import CostVerdict, cost_limit, judge_cost
from core.deadline import judge_deadline
from core.disk import DiskVerdict, judge_disk
from core.exit_plan import COST, DEADLINE, LOST
from core.instance import InstanceVerdict, instance_finding
from core.memory import Memory
from core.models import InstanceInfo, OpenAlert, RunRecord
from core.rules import Finding, Observation, Policy
from core.vocab import Condition

DEFAULT_GRACE_S = 900.0


@dataclass(frozen=True, slots=True)
class CheckPolicy:
    """What one run's checks are judged by: the rules' policy, the grace after a deadline
    before the teardown, whether a lost instance is torn down (`destroy_on_fail`), and the
    run's `max_cost` (USD, before what /extend added; None: no cap)."""

    rules: Policy = field(default_factory=Policy)
    deadline_grace_s: float = DEFAULT_GRACE_S
    destroy_on_fail: bool = True
    max_cost: float | None = None
    tz: tzinfo = UTC  # the zone the person reads times in (`[telegram] timezone`)


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """The cloud provider's word on an instance SSH could not reach: its info (None: it does
    not exist), or the error that kept the provider from answering."""

    info: InstanceInfo | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Outside:
    findings: tuple[Finding, ...]
    warned_for: datetime | None  # the deadline the hour-ahead warning has been sent for
    gone_checks: int  # checks in a row: SSH failed and the provider said gone or lost
    teardown: str | None  # the ending they call for: DEADLINE, COST or LOST
    cost_warned_for: float | None = None  # the max_cost limit the warning has been sent for
    due_at: datetime | None = None  # the deadline or the cost cap, whichever comes first
    unjudged: frozenset[str] = frozenset()  # no reading: an open alert stays open

    @property
    def lasting(self) -> bool:
        """A lasting one puts the run in alert mode like any other alert, and so does a first
        "gone" answer (the second check that may confirm it comes at the alert cadence)."""
        return any(not f.event for f in self.findings) or self.gone_checks > 0


def judge_outside(
    record: RunRecord,
    obs: Observation,
    instance: ProviderAnswer | None,
    memory: Memory,
    policy: CheckPolicy,
    open_alerts: Mapping[str, OpenAlert],
    now: datetime,
) -> Outside:
    verdict = _instance(record, obs, instance, memory)
    state = obs.probe.state if obs.probe is not None else None
    ended = state is not None and state.status.terminal
    deadline = judge_deadline(
        # an ended run has no deadline left: no "deadline soon" beside its terminal message
        None if ended else record.deadline_at,
        now,
        warned=record.deadline_at is not None and memory.deadline_warned_for == record.deadline_at,
        grace_s=policy.deadline_grace_s,
        tz=policy.tz,
    )
    limit = cost_limit(policy.max_cost, record.cost_extended_usd)
    cost = CostVerdict() if ended or limit is None else _cost(record, memory, limit, now, policy.tz)
    disk = DiskVerdict() if ended else _disk(obs, policy, open_alerts)
    lost = verdict.finding is not None and verdict.finding.key == Condition.INSTANCE_LOST
    teardown = DEADLINE if deadline.teardown else COST if cost.teardown else LOST if lost else None
    if teardown is LOST and not policy.destroy_on_fail:
        teardown = None
    found = (
        *((verdict.finding,) if verdict.finding else ()),
        *deadline.findings,
        *cost.findings,
        *((disk.finding,) if disk.finding else ()),
    )
    due = [t for t in (record.deadline_at, cost.cap_at) if t is not None]
    return Outside(
        # an event among them is announced once per key (assess's own are already filtered)
        findings=tuple(f for f in found if not (f.event and f.key in memory.announced)),
        warned_for=record.deadline_at if deadline.warned else None,
        gone_checks=verdict.gone_checks,
        teardown=teardown,
        cost_warned_for=limit if cost.warned else None,
        due_at=min(due) if due else None,
        unjudged=frozenset({Condition.DISK_LOW}) if disk.unjudged else frozenset(),
    )


def _instance(
    record: RunRecord, obs: Observation, instance: ProviderAnswer | None, memory: Memory
) -> InstanceVerdict:
    """Asked only when SSH failed; a reachable instance starts the gone count again."""
    if instance is None or obs.probe is not None or record.instance_id is None:
        return InstanceVerdict(None, 0)
    return instance_finding(
        record.instance_id,
        instance.info,
        instance.error,
        record.status,
        memory.instance_gone_checks,
    )


def _cost(
    record: RunRecord, memory: Memory, limit: float, now: datetime, tz: tzinfo
) -> CostVerdict:
    warned = memory.cost_warned_for is not None and memory.cost_warned_for == limit
    return judge_cost(limit, record.dph_total, record.launched_at, now, warned=warned, tz=tz)


def _disk(
    obs: Observation, policy: CheckPolicy, open_alerts: Mapping[str, OpenAlert]
) -> DiskVerdict:
    free_mb = obs.probe.disk_free_mb if obs.probe is not None else None
    alerting = Condition.DISK_LOW in open_alerts
    return judge_disk(free_mb, policy.rules.thresholds.disk_low_mb, alerting=alerting)
