"""How a run ends, planned as data. Pure: no I/O, no clock but `now`.

core/decide.py names the ending a check calls for (a deadline passed, the cost cap, the instance
lost); core/exits.py (the ExitHandler) reads what it needs from the store, asks this module what
the exit means, and applies the planned effects in one place (`ExitHandler._apply`), in order.
The order is the crash-safety: how the run ends and its terminal message are written before
the DELETE (a restart resumes from them), the destroy's result after it, the terminal message
last. Only the I/O itself (collect, `ctl stop`, the provider's DELETE) happens between steps.
The effects themselves (the data a plan is made of) are core/exit_effects.py, re-exported here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

from core.exit_effects import ClaimAction as ClaimAction
from core.exit_effects import Destroy as Destroy
from core.exit_effects import DestroyOutcome as DestroyOutcome
from core.exit_effects import Effect as Effect
from core.exit_effects import Enqueue as Enqueue
from core.exit_effects import FinishAction as FinishAction
from core.exit_effects import HoldMessage as HoldMessage
from core.exit_effects import SaveRun as SaveRun
from core.exit_effects import Step as Step
from core.messages import (
    ending_message,
    ending_status_line,
    log_context,
    summary_pairs,
    terminal_message,
)
from core.messages import with_instance_line as with_line
from core.models import MessageKind, OutboundMessage, RunRecord
from core.protocol import ProbeSnapshot, SupervisorState
from core.statusline import status_line
from core.topics import Topic
from core.vocab import RunStatus, TeardownState, is_terminal

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
# Endings that stop a live run and then destroy its instance whatever destroy_on_* say; the
# outputs come off first (a lost instance has none to give, a human's /teardown was asked for).
COLLECT_FIRST = (DEADLINE, COST)
FORCED_BY_OUTCOME = {ENDING_OUTCOMES[reason]: reason for reason in COLLECT_FIRST}
TEARDOWN_KEY = "teardown"  # the run's one-time action: destroy its instance


def should_destroy(status: str, *, destroy_on_done: bool, destroy_on_fail: bool) -> bool:
    """Pure teardown policy: done → destroy_on_done; failed or stopped → destroy_on_fail."""
    if status == RunStatus.DONE:
        return destroy_on_done
    return is_terminal(status) and destroy_on_fail


# -- the plan, step by step -----------------------------------------------------------------


def terminal_message_of(
    record: RunRecord,
    state: SupervisorState,
    probe: ProbeSnapshot | None,
    now: datetime,
    *,
    stall_kills: tuple[int, ...] = (),
    notify_done: str = "silent",
) -> OutboundMessage:
    """The run's terminal message as the supervisor's end is seen, its instance line pending.
    `stall_kills`: the attempts the watcher killed (from the run's memory)."""
    summary = summary_pairs(
        state,
        probe.tail if probe else (),
        dph_total=record.dph_total,
        launched_at=record.launched_at,
        now=now,
        instance="(pending)",
        stall_kills=stall_kills,
    )
    line = record.last_status_line or status_line(now=now, run=record.name, state=state)
    context = log_context(probe, state)
    return terminal_message(record.name, line, state, summary, context, notify_done=notify_done)


def plan_terminal(
    record: RunRecord, state: SupervisorState, message: OutboundMessage, now: datetime
) -> Step:
    """The supervisor's end seen: its terminal message waits, the row says how it ended."""
    outcome = state.outcome.value if state.outcome else state.status.value
    ended = replace(
        record, status=state.status.value, outcome=outcome, ended_at=state.ended_at or now
    )
    return Step(ended, (HoldMessage(record.name, message), SaveRun(ended)))


def plan_ending(record: RunRecord, reason: str, last_seen: str | None, now: datetime) -> Step:
    """A live run torn down (deadline, cost, lost, /teardown): written down before the
    teardown (a crash mid-DELETE resumes from here): `stopped` with the reason, and its
    terminal message waits. `last_seen`: the newest status line that read the run's state."""
    line = ending_status_line(last_seen, record, now)
    message = ending_message(
        record,
        line,
        reason,
        launched_at=record.launched_at,
        now=now,
        requested=reason == REQUESTED,
    )
    ended = replace(
        record,
        status=RunStatus.STOPPED.value,
        outcome=ENDING_OUTCOMES.get(reason, RunStatus.STOPPED.value),
        ended_at=now,
        last_status_line=line,
    )
    return Step(ended, (HoldMessage(record.name, message), SaveRun(ended)))


def plan_teardown(
    record: RunRecord, *, destroy_on_done: bool, destroy_on_fail: bool
) -> Destroy | DestroyOutcome:
    """An ended run's instance: destroy it, or keep it (the outcome says why)."""
    if record.instance_id is not None and record.teardown in (
        TeardownState.PENDING,
        TeardownState.FAILED,
    ):
        # A teardown already started (policy, deadline, lost instance): finish it. Only a
        # destroy that FAILED before was announced as still billing and is a retry; a
        # pending one was cut short by a restart (its DELETE may well have worked).
        failed_before = record.teardown == TeardownState.FAILED
        why = "retrying the teardown" if failed_before else "verified after a restart"
        return Destroy(why, announce=failed_before)
    forced = FORCED_BY_OUTCOME.get(record.outcome or "")
    if forced is not None and record.instance_id is not None:  # whatever destroy_on_* say
        return Destroy(forced, announce=False)
    on_done, on_fail = str(destroy_on_done).lower(), str(destroy_on_fail).lower()
    policy = f"destroy_on_done={on_done}, destroy_on_fail={on_fail}"
    wanted = should_destroy(
        record.status, destroy_on_done=destroy_on_done, destroy_on_fail=destroy_on_fail
    )
    if not wanted:
        line = f"kept running by policy ({policy}): still billing"
        return DestroyOutcome(line, False, record, billing=record.instance_id is not None)
    if record.instance_id is None:
        line = f"no cloud instance (local run); the policy would destroy it ({policy})"
        return DestroyOutcome(line, False, record)
    return Destroy(f"run {record.status}", announce=False)


def plan_claim(
    record: RunRecord, *, destroyed_before: bool, has_provider: bool, now: datetime
) -> tuple[Step, DestroyOutcome | None]:
    """Before the DELETE: claim the teardown and mark the row pending, so a restart verifies
    it instead of forgetting it. The outcome, when there is no DELETE to send."""
    instance_id = record.instance_id
    if destroyed_before or record.teardown == TeardownState.DESTROYED:
        return Step(record), DestroyOutcome(f"{instance_id} destroyed", False, record)
    pending = replace(record, teardown=TeardownState.PENDING.value)
    claimed = Step(pending, (ClaimAction(record.name, TEARDOWN_KEY, now), SaveRun(pending)))
    if not has_provider:  # the run's provider is not configured: the claim stands, failed
        line = (
            f"{instance_id}: provider {record.provider!r} is not configured (no API key?), "
            "NOT destroyed"
        )
        failed = replace(pending, teardown=TeardownState.FAILED.value)
        return claimed, DestroyOutcome(line, False, failed)
    return claimed, None


def plan_destroyed(
    record: RunRecord,
    step: Destroy,
    *,
    destroyed: bool,
    last_error: str | None,
    message: OutboundMessage,
    retried: bool,
    now: datetime,
) -> tuple[Step, DestroyOutcome]:
    """After the DELETE and its verification: the result is remembered; a failure is told
    (once an hour while it lasts), and so is a success that was announced or retried."""
    state = (TeardownState.DESTROYED if destroyed else TeardownState.FAILED).value
    after = replace(record, teardown=state, torn_down_at=now if destroyed else None)
    effects: list[Effect] = [FinishAction(record.name, TEARDOWN_KEY, state, now), SaveRun(after)]
    instance_id = record.instance_id
    if not destroyed:
        hour = now.strftime("%Y%m%d%H")
        effects.append(Enqueue(message, f"{record.name}:billing:{hour}", now))
        line = f"{instance_id} NOT destroyed ({last_error}): still billing"
        return Step(after, tuple(effects)), DestroyOutcome(line, True, after)
    if step.announce or retried:
        effects.append(Enqueue(message, f"{record.name}:destroyed", now))
    line = f"{instance_id} destroyed ({step.reason})"
    return Step(after, tuple(effects)), DestroyOutcome(line, False, after)


def plan_conclude(
    outcome: DestroyOutcome, held: OutboundMessage | None, now: datetime
) -> tuple[Step, float | None]:
    """The run's one terminal message with what happened to the instance, then stop
    watching, or keep the run live to retry a destroy that failed (the seconds until then)."""
    record = outcome.record
    final = with_instance_line(held, record, outcome.line, billing=outcome.billing)
    # stamped when the run ended (never later than now): runs ending together are told in
    # the order they ended, not in the order their teardowns finished
    ended_at = min(record.ended_at or now, now)
    told = Enqueue(final, f"{record.name}:terminal", ended_at)
    if outcome.retry:
        retry_at = now + timedelta(seconds=RETRY_TEARDOWN_S)
        return Step(record, (told, SaveRun(replace(record, next_check_at=retry_at)))), (
            RETRY_TEARDOWN_S
        )
    done = replace(record, live=False, next_check_at=None)
    return Step(done, (told, SaveRun(done))), None


def retry_later(record: RunRecord, retry_s: float, now: datetime) -> Step:
    """The run stays live; its next check comes back to this exit in `retry_s`."""
    return Step(record, (SaveRun(replace(record, next_check_at=now + timedelta(seconds=retry_s))),))


def held_message(stored: str | None) -> OutboundMessage | None:
    """The terminal message HoldMessage kept, as the store gives it back."""
    return None if stored is None else OutboundMessage.from_json(json.loads(stored))


def with_instance_line(
    held: OutboundMessage | None, record: RunRecord, instance_line: str, *, billing: bool
) -> OutboundMessage:
    """The held terminal message with what happened to the instance (one that still bills
    is loud and offers Teardown); a stand-in when none was held."""
    message = held or OutboundMessage(
        kind=MessageKind.TERMINAL,
        title=f"{record.name}: {record.status}",
        run=record.name,
        status_line=record.last_status_line,
        summary=(("instance", instance_line),),
        topic=Topic.STOPPED,
        loud=True,  # how it ended was lost: a human should look
    )
    return with_line(message, instance_line, billing=billing)
