"""`decide`: one check's whole decision (commit, kill, finish, teardown, alerts, next check),
table-driven through the real pure core. No I/O: every `now` is injected, the store's part (the
open alerts, the run row) is threaded through the decisions as the watcher commits them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import pytest

from core.cadence import Phase
from core.decide import CheckDecision, CheckPolicy, ProviderAnswer, decide, memory_of
from core.exit_plan import COST, DEADLINE, LOST
from core.models import InstanceInfo, InstanceState, OpenAlert, RunRecord
from core.rules import Observation
from tests.core.builders import (
    IDLE_TREE,
    RUN,
    T0,
    at,
    failure,
    make_probe,
    running,
    tree,
    unreachable,
    with_state,
)

Step = tuple[Observation, ProviderAnswer | None]
GONE = ProviderAnswer(None)  # the provider's clear word: no such instance
EXITED = ProviderAnswer(InstanceInfo(id="4242", state=InstanceState.LOST, status="exited"))
STOPPED = ProviderAnswer(InstanceInfo(id="4242", state=InstanceState.STOPPED, status="stopped"))
PROVIDER_DOWN = ProviderAnswer(None, "HTTP 502 from the provider")
ANY = -1.0  # the interval is not what the case is about
KEEP_ON_FAIL = CheckPolicy(destroy_on_fail=False)
CAPPED = CheckPolicy(max_cost=1.0)  # at $0.50/h: the cap two hours after launch


def checks(*observations: Observation) -> list[Step]:
    return [(obs, None) for obs in observations]


def busy_gpu_hang(minute: float) -> Observation:
    """Silent since minute 1, a GPU spinning, CPU moving but no I/O: a deadlock."""
    activity = {**tree(at(minute))["activity"], "last_io_at": None}
    state = tree(at(minute)) | {"activity": activity}
    return running(at(minute), output_at=at(1), util_pct=100, **state)


def done(minute: float, status: str = "done", outcome: str = "completed") -> Observation:
    return with_state(at(minute), status=status, outcome=outcome, ended_at=at(minute))


def disk(minute: float, free_mb: float | None) -> Observation:
    """A healthy check whose probe read `free_mb` of disk free (None: no reading)."""
    obs = running(at(minute))
    assert obs.probe is not None
    return replace(obs, probe=obs.probe.model_copy(update={"disk_free_mb": free_mb}))


def unreadable(minute: float) -> Observation:
    probe = make_probe(at(minute), None, state_error="state.json: Expecting value: line 1")
    return Observation(at=at(minute), probe=probe)


class Case(NamedTuple):
    steps: list[Step]
    notified: list[set[str]]  # the finding keys each check sends (an alert message)
    open_after: set[str] = set()  # alerts open after the last check
    kill: int | None = None
    finish: str | None = None  # the terminal status handed to the exit
    teardown: str | None = None
    stop: bool = False
    status: str = "running"  # the run row's status after the last check
    interval_s: float | None = ANY
    record: dict[str, Any] = {}  # noqa: RUF012 (a NamedTuple default, never mutated)
    policy: CheckPolicy = CheckPolicy()


CASES = {
    "healthy: silent, early cadence": Case(checks(running(at(1))), [set()], interval_s=120.0),
    "stall: one kill, a silent event": Case(
        checks(running(at(1)), running(at(12), output_at=at(1), util_pct=1, **IDLE_TREE)),
        [set(), {"stall_kill:1"}],
        kill=1,
        interval_s=60.0,  # the retry's early-risk ramp starts again
    ),
    "hang: an open alert, never a kill": Case(
        checks(running(at(1)), busy_gpu_hang(14)),
        [set(), {"hang"}],
        open_after={"hang"},
        interval_s=180.0,
    ),
    "deadline an hour ahead: warned once": Case(
        checks(running(at(10)), running(at(20))),
        [{"deadline_warning:2026-11-28T04:00Z"}, set()],
        record={"deadline_at": at(60)},
    ),
    "deadline passed, in the grace: alert, no teardown": Case(
        checks(running(at(10))),
        [{"deadline"}],
        open_after={"deadline"},
        record={"deadline_at": at(5)},
        interval_s=180.0,
    ),
    "deadline passed beyond the grace: teardown": Case(
        checks(running(at(25))),
        [{"deadline"}],
        open_after={"deadline"},
        teardown=DEADLINE,
        record={"deadline_at": at(5)},
    ),
    "max_cost an hour of spend ahead: warned once": Case(
        checks(running(at(70)), running(at(80))),
        [{"cost_warning:1.00"}, set()],
        record={"dph_total": 0.5},
        policy=CAPPED,
    ),
    "max_cost reached: teardown": Case(
        checks(running(at(121))),
        [{"cost_cap"}],
        open_after={"cost_cap"},
        teardown=COST,
        record={"dph_total": 0.5},
        policy=CAPPED,
    ),
    "max_cost extended by /extend: no teardown, warned for the new cap": Case(
        checks(running(at(121))),
        [{"cost_warning:1.50"}],
        record={"dph_total": 0.5, "cost_extended_usd": 0.5},
        policy=CAPPED,
    ),
    "max_cost with no price: said once, never a teardown": Case(
        checks(running(at(1)), running(at(500))),
        [{"cost_unknown:1.00"}, set()],
        policy=CAPPED,
    ),
    "the next check is at the cost cap, not after it": Case(
        checks(running(at(119.5))),
        [{"cost_warning:1.00"}],
        record={"dph_total": 0.5},
        policy=CAPPED,
        interval_s=30.0,  # the cap is 30 s away; the early cadence would say 60 s
    ),
    "disk low: one alert, held just above the line, and through a missing reading": Case(
        checks(disk(1, 3000), disk(4, 3000), disk(7, 11000), disk(10, None)),
        [{"disk_low"}, set(), set(), set()],
        open_after={"disk_low"},
    ),
    "disk low: cleared once clearly back": Case(
        checks(disk(1, 3000), disk(4, 20000)),
        [{"disk_low"}, set()],
    ),
    "muted: a soft alert stays quiet": Case(
        checks(*(running(at(m), util_pct=3) for m in (20, 23, 26, 30))),
        [set(), set(), set(), set()],
        record={"muted_until": at(120)},
    ),
    "not muted: the same soft alert speaks": Case(
        checks(*(running(at(m), util_pct=3) for m in (20, 23, 26, 30))),
        [set(), set(), set(), {"low_gpu"}],
        open_after={"low_gpu"},
    ),
    "muted: a stall still speaks and is still killed": Case(
        checks(running(at(1)), running(at(12), output_at=at(1), util_pct=1, **IDLE_TREE)),
        [set(), {"stall_kill:1"}],
        kill=1,
        record={"muted_until": at(120)},
    ),
    "instance lost twice in a row: teardown": Case(
        [(unreachable(at(1)), EXITED), (unreachable(at(4)), EXITED)],
        [set(), {"unreachable", "instance_lost"}],
        open_after={"unreachable", "instance_lost"},
        teardown=LOST,
        status="unreachable",
    ),
    "instance gone, kept by policy: alert only": Case(
        [(unreachable(at(1)), GONE), (unreachable(at(4)), GONE)],
        [set(), {"unreachable", "instance_lost"}],
        open_after={"unreachable", "instance_lost"},
        status="unreachable",
        policy=KEEP_ON_FAIL,
    ),
    "instance gone once: no verdict yet, looked at again soon": Case(
        [(unreachable(at(1)), GONE)], [set()], status="unreachable", interval_s=150.0
    ),
    "instance stopped under a live run: alert, no teardown": Case(
        [(unreachable(at(1)), STOPPED)],
        [{"instance_stopped"}],
        open_after={"instance_stopped"},
        status="unreachable",
        interval_s=150.0,
    ),
    "provider unreadable: it says nothing": Case(
        [(unreachable(at(1)), GONE), (unreachable(at(4)), PROVIDER_DOWN)],
        [set(), {"unreachable"}],
        open_after={"unreachable"},
        status="unreachable",
    ),
    "unreachable once: looked at again soon": Case(
        checks(running(at(1)), unreachable(at(3))),
        [set(), set()],
        status="unreachable",
        interval_s=150.0,
    ),
    "done: finished, no alert, no more checks": Case(
        checks(running(at(1)), done(5)),
        [set(), set()],
        finish="done",
        status="done",
        interval_s=None,
    ),
    "failed with an open alert: closed silently": Case(
        checks(running(at(1)), busy_gpu_hang(14), done(16, "failed", "budget_exhausted")),
        [set(), {"hang"}, set()],
        finish="failed",
        status="failed",
        interval_s=None,
    ),
    "done past its deadline: finished, no deadline teardown": Case(
        checks(done(40)), [set()], finish="done", status="done", record={"deadline_at": at(5)}
    ),
    "unreadable answer: an alert, the run's status kept": Case(
        checks(running(at(1)), unreadable(5)),
        [set(), {"invalid_state"}],
        open_after={"invalid_state"},
        interval_s=180.0,
    ),
    "host key changed: checks stop": Case(
        checks(Observation(at=at(1), error="host key mismatch", host_key_changed=True)),
        [{"host_key"}],
        open_after={"host_key"},
        stop=True,
        status="host_key_changed",
        interval_s=None,
    ),
}


def new_record(**overrides: Any) -> RunRecord:
    base = RunRecord(
        name=RUN, run_dir="/workspace/runs/llama-ft", launched_at=T0, instance_id="4242"
    )
    return replace(base, status="running", attempt=1, max_attempts=3, **overrides)


def applied(open_alerts: dict[str, OpenAlert], d: CheckDecision) -> dict[str, OpenAlert]:
    """The open alerts after the store applies the decision's commit."""
    after = {k: v for k, v in open_alerts.items() if k not in d.commit.alerts_resolved}
    after.update({a.condition: a for a in d.commit.alerts_opened})
    return after


def run_decisions(
    steps: Sequence[Step], record: RunRecord, policy: CheckPolicy
) -> tuple[list[CheckDecision], dict[str, OpenAlert]]:
    decisions: list[CheckDecision] = []
    open_alerts: dict[str, OpenAlert] = {}
    for obs, answer in steps:
        decision = decide(record, obs, answer, open_alerts, policy, obs.at)
        open_alerts = applied(open_alerts, decision)
        record = decision.record
        decisions.append(decision)
    return decisions, open_alerts


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_a_check_decides_what_to_commit_and_what_to_do(case: Case) -> None:
    decisions, open_alerts = run_decisions(case.steps, new_record(**case.record), case.policy)
    assert [{f.key for f in d.told} for d in decisions] == case.notified
    for d, notified in zip(decisions, case.notified, strict=True):
        alerts = [key for key, _ in d.commit.messages if key.split(":")[1] == "alert"]
        assert len(alerts) == (1 if notified else 0)  # one message for all it notifies
    last = decisions[-1]
    assert set(open_alerts) == case.open_after
    assert last.kill_attempt == case.kill
    assert (last.finish.status.value if last.finish else None) == case.finish
    assert last.teardown == case.teardown
    assert last.stop is case.stop
    assert last.record.status == case.status
    assert last.record.live is not case.stop
    if case.interval_s != ANY:
        assert last.interval_s == case.interval_s


def test_the_commit_carries_the_status_line_the_memory_and_the_next_check() -> None:
    (decision,), _ = run_decisions(checks(running(at(3))), new_record(), CheckPolicy())
    commit = decision.commit
    assert commit.at == at(3) and commit.health == "ok"
    assert commit.status_line.startswith("2026-11-28T03:03:00Z running 1/3 100 ")
    assert decision.record.last_status_line == commit.status_line
    assert decision.record.next_check_at == at(5)
    assert memory_of(decision.record).samples[-1].step == 100


def test_a_recovery_is_one_message_and_closes_the_alert() -> None:
    steps = checks(running(at(1)), busy_gpu_hang(14), running(at(17)), running(at(20)))
    decisions, open_alerts = run_decisions(steps, new_record(), CheckPolicy())
    assert decisions[2].commit.alerts_resolved == ("hang",)
    assert [key.split(":")[1] for key, _ in decisions[2].commit.messages] == ["recovered"]
    assert open_alerts == {}


def test_a_first_gone_answer_puts_the_cadence_in_alert_mode_once() -> None:
    """The provider's word joins assess's findings without running the cadence twice: the
    run's memory says alert mode and remembers the answer for the confirming check."""
    decisions, _ = run_decisions([(unreachable(at(1)), GONE)], new_record(), CheckPolicy())
    memory = memory_of(decisions[0].record)
    assert memory.cadence.phase is Phase.ALERT and memory.instance_gone_checks == 1
    again, _ = run_decisions(checks(running(at(5))), decisions[0].record, CheckPolicy())
    assert memory_of(again[0].record).instance_gone_checks == 0  # reachable: counted afresh


def test_the_warning_is_remembered_for_its_deadline_only() -> None:
    decisions, _ = run_decisions(
        checks(running(at(10))), new_record(deadline_at=at(60)), CheckPolicy()
    )
    assert memory_of(decisions[0].record).deadline_warned_for == at(60)
    moved = replace(decisions[0].record, deadline_at=at(70))  # /extend by ten minutes
    again, _ = run_decisions(checks(running(at(20))), moved, CheckPolicy())
    assert {f.key for f in again[0].told} == {"deadline_warning:2026-11-28T04:10Z"}


def test_the_retry_a_stall_kill_caused_is_not_told_twice() -> None:
    retry = running(at(14), attempt=2, last_failure=failure(1, "killed", exit_code=-9))
    steps = checks(running(at(1)), running(at(12), output_at=at(1), util_pct=1, **IDLE_TREE), retry)
    decisions, _ = run_decisions(steps, new_record(), CheckPolicy())
    assert decisions[1].kill_attempt == 1
    assert {f.key for f in decisions[2].alerts.to_notify} == {"attempt:2"}  # a new event...
    assert decisions[2].told == () and decisions[2].commit.messages == ()  # ...told already
