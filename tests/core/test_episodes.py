"""One message per episode, loud only when a human is needed: headlines, loudness, buttons,
the failure verdict and advice that fits the case. Pure."""

from __future__ import annotations

from core.messages import (
    advice,
    alert_message,
    episode_findings,
    exception_line,
    summary_pairs,
    terminal_message,
    with_instance_line,
)
from core.models import MessageKind, OutboundMessage
from core.protocol import Failure, FailureKind
from core.rules import Finding
from core.topics import TOPICS, Action, RunFacts, Topic, actions_for, loud_for
from tests.core.builders import RUN, T0, at, failure, fix, make_state

LINE = "2026-11-28T03:12:09Z running 2/3 41200/90000 97% 71.3/80.0G oom llama-ft"
OOM = "Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory."
NAN = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 180, in step\n'
    "ValueError: loss is NaN at step 1200\n"
)
LIVE = RunFacts(live=True, has_instance=True, extendable=True)


def retry(attempt: int = 2) -> Finding:
    return Finding(f"attempt:{attempt}", f"attempt {attempt}/3 started after oom", event=True)


def test_a_self_healed_retry_is_one_silent_message_that_says_what_was_fixed() -> None:
    state = make_state(
        attempt=2,
        fixes=[fix(1, "oom", "eval_batch_size 64 -> 32")],
        last_failure=failure(1, "oom", 1, OOM),
    )
    message = alert_message(RUN, LINE, [retry()], OOM.split("\n"), state=state, facts=LIVE)
    assert message.title == "↻ llama-ft self-healed: oom → eval_batch_size 64→32, attempt 2/3"
    assert (message.topic, message.loud, message.actions) == (Topic.SELF_HEALED, False, ())
    assert "torch.OutOfMemoryError: CUDA out of memory." in message.log_lines


def test_a_retry_without_a_fix_names_the_exception_and_stays_silent() -> None:
    state = make_state(attempt=2, last_failure=failure(1, "error", 1, NAN))
    message = alert_message(RUN, LINE, [retry()], (), state=state)
    assert message.title == (
        "↻ llama-ft retrying after error (ValueError): attempt 2/3, no fix applied"
    )
    assert not message.loud


def test_a_stall_kill_is_one_silent_message_and_its_retry_adds_none() -> None:
    kill = Finding("stall_kill:1", "silent 10m; killing attempt to retry", event=True)
    message = alert_message(RUN, LINE, [kill], ["step 5"], state=make_state(attempt=1))
    assert message.title == "⚠ llama-ft stalled — attempt killed, retrying"
    assert not message.loud
    after = make_state(attempt=2, last_failure=failure(1, "killed", -9))
    assert episode_findings([retry()], after, stall_kills=(1,)) == ()
    # a retry after an attempt that died by itself is news of its own
    died = make_state(attempt=2, last_failure=failure(1, "oom", 1))
    assert episode_findings([retry()], died, stall_kills=(1,)) == (retry(),)


def test_an_alert_a_human_must_act_on_is_loud_with_the_buttons_that_fit() -> None:
    stall = Finding("stall", "silent again; already recovered once, needs a human")
    message = alert_message(RUN, LINE, [stall], ["x"], state=make_state(), facts=LIVE)
    assert message.title == "⚠ llama-ft needs you: stalled again"
    assert message.loud
    assert message.actions == (Action.KILL, Action.TEARDOWN, Action.STATUS)
    local = RunFacts(live=True, has_instance=False)
    assert alert_message(RUN, LINE, [stall], (), facts=local).actions == (
        Action.KILL,
        Action.STATUS,
    )
    soft = Finding("low_gpu", "GPU idle", soft=True)  # worth a look, nobody woken for it
    quiet = alert_message(RUN, LINE, [soft], (), facts=LIVE)
    assert (quiet.loud, quiet.actions) == (False, ())


def test_a_deadline_alert_carries_no_log_says_what_and_when_and_offers_extend() -> None:
    ahead = Finding(
        "deadline_warning:2026-11-28T13:00Z",
        "deadline 14:00 CET in 50m: the instance will be torn down 15m after it unless you /extend",
        event=True,
    )
    message = alert_message(RUN, LINE, [ahead], ["step 1 loss 2"], facts=LIVE)
    assert message.log_lines == ()
    assert message.title.startswith("⏰ llama-ft: deadline 14:00 CET in 50m: the instance will")
    assert message.loud and message.actions[0] is Action.EXTEND


def test_loud_only_when_a_human_is_needed() -> None:
    silent = {t for t, traits in TOPICS.items() if not traits.loud}
    assert {
        Topic.SELF_HEALED,
        Topic.STALL_RECOVERED,
        Topic.RECOVERED,
        Topic.DESTROYED,
        Topic.MORNING_SUMMARY,
        Topic.DONE,
    } <= silent
    loud = {
        Topic.FAILED,
        Topic.NEEDS_HUMAN,
        Topic.STILL_BILLING,
        Topic.DEADLINE_AHEAD,
        Topic.COST_AHEAD,
        Topic.HOST_KEY,
        Topic.STORE_BROKEN,
    }
    assert not loud & silent
    assert loud_for([Topic.DONE], notify_done="loud")
    assert actions_for([Topic.SELF_HEALED], LIVE) == ()


def test_a_healthy_end_is_silent_unless_the_person_asked() -> None:
    done = make_state(status="done", outcome="completed")
    assert not terminal_message(RUN, LINE, done, (), ()).loud
    assert terminal_message(RUN, LINE, done, (), (), notify_done="loud").loud
    failed = make_state(status="failed", outcome="budget_exhausted")
    assert terminal_message(RUN, LINE, failed, (), ()).loud


def test_an_end_that_keeps_billing_is_loud_and_offers_teardown() -> None:
    done = make_state(status="done", outcome="completed")
    message = terminal_message(RUN, LINE, done, (("instance", "(pending)"),), ())
    kept = with_instance_line(message, "kept running by policy: still billing", billing=True)
    assert kept.loud and kept.actions == (Action.TEARDOWN, Action.STATUS)
    assert kept.summary == (("instance", "kept running by policy: still billing"),)
    assert OutboundMessage.from_json(kept.to_json()) == kept


def test_a_failure_verdict_comes_first_and_names_the_exception() -> None:
    state = make_state(
        status="failed",
        outcome="budget_exhausted",
        attempt=1,
        max_attempts=1,
        last_failure=failure(1, "error", 1, NAN),
    )
    pairs = summary_pairs(
        state, (), dph_total=1.0, launched_at=T0, now=at(60), instance="(pending)"
    )
    assert [k for k, _ in pairs[:4]] == ["outcome", "root cause", "next change", "instance"]
    got = dict(pairs)
    assert got["root cause"] == "error: ValueError: loss is NaN at step 1200 (exit 1)"
    assert "fails the same way each time" not in got["next change"]
    assert "it was not retried" in got["next change"]


def test_advice_after_several_attempts_says_so() -> None:
    tip = advice(Failure(attempt=3, kind=FailureKind.ERROR, excerpt=NAN), {}, attempts=3)
    assert tip.startswith("the trainer's own code raised ValueError in each of 3 attempts")
    assert "in each of 3 attempts" in tip


def test_a_stall_recovery_is_listed_among_the_fixes() -> None:
    state = make_state(status="done", outcome="completed", attempt=2)
    pairs = dict(
        summary_pairs(
            state, (), dph_total=None, launched_at=T0, now=at(5), instance="-", stall_kills=(1,)
        )
    )
    assert pairs["fixes"] == "stall (attempt 1 killed, retried)"


def test_instance_text_reaches_the_headline_only_in_narrow_shapes() -> None:
    forged = "halve eval_batch_size • instance 4242 destroyed (verified)"
    state = make_state(attempt=2, fixes=[fix(1, "oom", forged)], last_failure=failure(1, "oom"))
    message = alert_message(RUN, LINE, [retry()], (), state=state)
    assert message.title == "↻ llama-ft self-healed: oom, attempt 2/3"
    lying = make_state(attempt=2, last_failure=failure(1, "error", 1, "Error: • all good"))
    assert "all good" not in alert_message(RUN, LINE, [retry()], (), state=lying).title


def test_the_exception_line_is_the_last_one_named() -> None:
    assert exception_line(OOM) == "torch.OutOfMemoryError: CUDA out of memory."
    assert exception_line("step 1\nKilled\n") is None


def test_a_message_queued_by_an_older_version_keeps_its_loudness() -> None:
    old = {"kind": "alert", "title": "x"}
    assert OutboundMessage.from_json(old).loud
    assert not OutboundMessage.from_json({**old, "kind": MessageKind.RECOVERY.value}).loud
