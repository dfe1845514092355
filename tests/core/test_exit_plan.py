"""The exit planned as data (core/exit_plan.py): which effects, in which order, for each way a
run ends. Pure: no store, no provider; `now` injected. The applier (core/exits.py) is covered
end to end by tests/reliability/test_vast_teardown_faults.py and tests/e2e/test_vast_flow.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from core.exit_plan import (
    DEADLINE,
    ClaimAction,
    Destroy,
    DestroyOutcome,
    Enqueue,
    FinishAction,
    HoldMessage,
    SaveRun,
    plan_claim,
    plan_conclude,
    plan_destroyed,
    plan_ending,
    plan_teardown,
    plan_terminal,
    terminal_message_of,
)
from core.models import MessageKind, OutboundMessage, RunRecord
from tests.core.builders import RUN, T0, at, make_probe, make_state, state_doc

NOTE = OutboundMessage(kind=MessageKind.INFO, title="instance note", run=RUN)


def record(**overrides: Any) -> RunRecord:
    base = RunRecord(name=RUN, run_dir="/workspace/runs/llama-ft", launched_at=T0)
    return replace(base, **({"instance_id": "4242", "status": "running"} | overrides))


def kinds(effects: tuple[object, ...]) -> list[str]:
    return [type(e).__name__ for e in effects]


def test_a_terminal_state_holds_its_message_before_it_marks_the_run_ended() -> None:
    state = make_state(status="done", outcome="completed", ended_at=at(30))
    probe = make_probe(at(31), state_doc(status="done", outcome="completed", ended_at=at(30)))
    ended = record(last_status_line="line")
    message = terminal_message_of(ended, state, probe, at(31))
    step = plan_terminal(ended, state, message, at(31))
    assert kinds(step.effects) == ["HoldMessage", "SaveRun"]
    held = step.effects[0]
    assert isinstance(held, HoldMessage) and ("instance", "(pending)") in held.message.summary
    assert (step.record.status, step.record.outcome, step.record.ended_at) == (
        "done",
        "completed",
        at(30),
    )


def test_a_live_run_torn_down_is_written_down_as_stopped_with_its_reason() -> None:
    step = plan_ending(record(), DEADLINE, None, at(60))
    assert kinds(step.effects) == ["HoldMessage", "SaveRun"]
    assert (step.record.status, step.record.outcome, step.record.ended_at) == (
        "stopped",
        "deadline_passed",
        at(60),
    )


TEARDOWN = {
    "done, destroy_on_done: destroyed": (
        {"status": "done"},
        True,
        True,
        Destroy("run done", False),
    ),
    "failed, destroy_on_fail: destroyed": (
        {"status": "failed"},
        True,
        True,
        Destroy("run failed", False),
    ),
    "done, kept by policy": ({"status": "done"}, False, True, "kept running by policy"),
    "stopped, kept by policy": ({"status": "stopped"}, True, False, "kept running by policy"),
    "no instance: nothing to destroy": (
        {"status": "done", "instance_id": None},
        True,
        True,
        "no cloud instance (local run)",
    ),
    "a pending teardown is verified, whatever the policy": (
        {"status": "done", "teardown": "pending"},
        False,
        False,
        Destroy("verified after a restart", False),
    ),
    "a failed teardown is retried and announced": (
        {"status": "failed", "teardown": "failed"},
        True,
        True,
        Destroy("retrying the teardown", True),
    ),
}


@pytest.mark.parametrize("case", TEARDOWN.values(), ids=list(TEARDOWN))
def test_an_ended_runs_instance_is_destroyed_or_kept_by_policy(
    case: tuple[dict[str, Any], bool, bool, Destroy | str],
) -> None:
    fields, on_done, on_fail, expected = case
    planned = plan_teardown(record(**fields), destroy_on_done=on_done, destroy_on_fail=on_fail)
    if isinstance(expected, Destroy):
        assert planned == expected
    else:
        assert isinstance(planned, DestroyOutcome) and expected in planned.line
        assert not planned.retry


def test_the_teardown_is_claimed_and_marked_pending_before_the_delete() -> None:
    step, outcome = plan_claim(record(), destroyed_before=False, has_provider=True, now=at(5))
    assert outcome is None
    assert step.effects == (
        ClaimAction(RUN, "teardown", at(5)),
        SaveRun(record(teardown="pending")),
    )


def test_a_destroyed_instance_is_never_destroyed_again() -> None:
    step, outcome = plan_claim(record(), destroyed_before=True, has_provider=True, now=at(5))
    assert step.effects == () and outcome is not None and outcome.line == "4242 destroyed"


def test_without_a_provider_the_claim_stands_and_the_instance_is_not_destroyed() -> None:
    step, outcome = plan_claim(record(), destroyed_before=False, has_provider=False, now=at(5))
    assert kinds(step.effects) == ["ClaimAction", "SaveRun"]
    assert outcome is not None and "NOT destroyed" in outcome.line
    assert outcome.record.teardown == "failed" and not outcome.retry


def test_a_failed_destroy_is_remembered_told_hourly_and_retried() -> None:
    step, outcome = plan_destroyed(
        record(teardown="pending"),
        Destroy("run done", False),
        destroyed=False,
        last_error="HTTP 500",
        message=NOTE,
        retried=False,
        now=at(75),
    )
    assert step.effects[0] == FinishAction(RUN, "teardown", "failed", at(75))
    assert step.effects[2] == Enqueue(NOTE, f"{RUN}:billing:2026112804", at(75))
    assert outcome.retry and "NOT destroyed (HTTP 500): still billing" in outcome.line
    assert outcome.record.teardown == "failed" and outcome.record.torn_down_at is None


@pytest.mark.parametrize(
    ("announce", "retried", "told"), [(False, False, 0), (True, False, 1), (False, True, 1)]
)
def test_a_destroyed_instance_is_told_apart_only_when_announced_or_retried(
    announce: bool, retried: bool, told: int
) -> None:
    step, outcome = plan_destroyed(
        record(teardown="pending"),
        Destroy("deadline passed", announce),
        destroyed=True,
        last_error=None,
        message=NOTE,
        retried=retried,
        now=at(75),
    )
    assert kinds(step.effects) == ["FinishAction", "SaveRun"] + ["Enqueue"] * told
    assert outcome.line == "4242 destroyed (deadline passed)" and not outcome.retry
    assert outcome.record.torn_down_at == at(75)


def test_the_terminal_message_gets_the_instance_line_and_the_run_stops_being_watched() -> None:
    held = OutboundMessage(
        kind=MessageKind.TERMINAL, title="done", run=RUN, summary=(("instance", "(pending)"),)
    )
    ended = record(status="done", ended_at=at(30))
    step, retry_s = plan_conclude(DestroyOutcome("4242 destroyed", False, ended), held, at(40))
    told, saved = step.effects
    assert isinstance(told, Enqueue) and told.at == at(30)  # stamped when the run ended
    assert told.message.summary == (("instance", "4242 destroyed"),)
    assert isinstance(saved, SaveRun) and not saved.record.live and retry_s is None


def test_a_destroy_to_retry_keeps_the_run_live_for_its_next_check() -> None:
    ended = record(status="done", ended_at=at(30))
    step, retry_s = plan_conclude(DestroyOutcome("NOT destroyed", True, ended), None, at(40))
    told, saved = step.effects
    assert isinstance(told, Enqueue) and told.message.summary == (("instance", "NOT destroyed"),)
    assert isinstance(saved, SaveRun) and saved.record.live
    assert retry_s == 600.0 and saved.record.next_check_at == at(50)


def test_an_instance_kept_by_policy_is_told_as_still_billing() -> None:
    kept = plan_teardown(record(status="done"), destroy_on_done=False, destroy_on_fail=True)
    assert isinstance(kept, DestroyOutcome) and kept.billing
    local = plan_teardown(
        record(status="done", instance_id=None), destroy_on_done=False, destroy_on_fail=True
    )
    assert isinstance(local, DestroyOutcome) and not local.billing  # nothing bills


def test_a_deadline_or_cost_ending_destroys_whatever_the_policy_says() -> None:
    ended = record(status="stopped", outcome="deadline_passed")
    planned = plan_teardown(ended, destroy_on_done=False, destroy_on_fail=False)
    assert planned == Destroy(DEADLINE, announce=False)
