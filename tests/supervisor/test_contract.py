"""Contract: real supervisor output validates with core's own parser (core.protocol)."""

from __future__ import annotations

import json

from core.messages import advice
from core.protocol import FailureKind, Outcome, RunStatus, parse_probe, parse_state
from core.vocab import FAILURE_TRAITS, FixKind
from supervisor.classify import KINDS
from supervisor.config import FIX_KINDS
from supervisor.runner import NO_FIX_NO_RETRY
from supervisor.verdict import OUTCOMES
from tests.supervisor import trainers
from tests.supervisor.conftest import Run, cli


def test_real_state_and_probe_output_parse_with_core_protocol(run: Run) -> None:
    knobs = {"eval_batch_size": {"value": 64, "min": 4, "factor": 0.5}}
    run.configure(trainers.OOM_UNLESS_SMALL, "{eval_batch_size}", knobs=knobs)
    run.run()
    state = parse_state(run.state())
    assert state.status is RunStatus.DONE and state.fixes[0].kind == "oom"
    assert state.last_failure is not None and state.last_failure.kind == "oom"
    assert state.ended_at is not None and state.ended_at.tzinfo is not None
    probe = cli("probe", "--run-dir", str(run.run_dir), "--attempt", "3", "--offset", "5")
    snap = parse_probe(probe.stdout)
    assert snap.state == state and snap.state_error is None
    assert snap.log is not None and snap.log.attempt == 3 and snap.log.offset == 5
    assert snap.tail[-1] == "step 100/100"


def test_a_probe_of_a_missing_run_dir_still_parses_and_says_why(run: Run) -> None:
    probe = cli("probe", "--run-dir", str(run.run_dir))
    assert probe.returncode == 0
    snap = parse_probe(probe.stdout)
    assert snap.state is None and "state.json missing" in (snap.state_error or "")
    assert snap.log is None


def test_a_truncated_state_json_is_reported_not_crashed_on(run: Run) -> None:
    run.run_dir.mkdir()
    (run.run_dir / "state.json").write_text('{"schema": 1, "run": "t", "sta')
    doc = json.loads(cli("probe", "--run-dir", str(run.run_dir)).stdout)
    assert doc["state"] is None and "not valid JSON" in doc["state_error"]
    assert parse_probe(json.dumps(doc)).state_error == doc["state_error"]


def test_the_failure_kinds_and_outcomes_the_supervisor_writes_are_the_ones_core_names() -> None:
    assert list(KINDS) == [kind.value for kind in FailureKind]
    assert list(OUTCOMES) == [outcome.value for outcome in Outcome]


def test_the_fix_kinds_the_supervisor_applies_are_the_ones_core_names() -> None:
    # core's config accepts exactly the fixes the supervisor's RUN.json accepts, and the
    # failures it gives up on without a fix are the ones core's traits say
    assert list(FIX_KINDS) == [fix.value for fix in FixKind]
    unretried = {kind.value for kind, t in FAILURE_TRAITS.items() if not t.retried_unfixed}
    assert set(NO_FIX_NO_RETRY) == unretried


def test_a_failure_kind_core_does_not_know_is_shown_not_refused(run: Run) -> None:
    run.configure(trainers.DIFFERENT_ERROR_EACH_TIME, max_attempts=1)
    run.run()
    doc = run.state()
    doc["last_failure"]["kind"] = "quantum_flux"  # what a newer supervisor might write
    state = parse_state(doc)
    assert state.last_failure is not None
    assert state.last_failure.kind is FailureKind.ERROR
    assert state.last_failure.label == "error (quantum_flux)"
    assert "quantum_flux" in advice(state.last_failure, {})
