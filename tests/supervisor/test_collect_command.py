"""The collect command (the user's own upload) under the real supervisor CLI: run after the
trainer ends, failed runs too, as an argument list (no shell), bounded by its timeout, its exit
code and last lines in state.json's `collect` for the watcher."""

from __future__ import annotations

import sys

import pytest

from core.config import CollectConfig, RunConfig
from core.launch import run_json
from supervisor.config import ConfigError, parse_config
from tests.supervisor import trainers
from tests.supervisor.conftest import Run

UPLOAD = "import os, sys; print('uploaded', sys.argv[1:], os.path.basename(os.getcwd()))"


def test_an_upload_runs_after_the_trainer_as_an_argument_list_and_is_recorded(run: Run) -> None:
    command = [sys.executable, "-c", UPLOAD, "a b", "$HOME;rm -rf /"]
    run.configure(trainers.TQDM_OK, collect={"command": command, "timeout_s": 30})
    done = run.run()
    assert done.returncode == 0, done.stderr
    state = run.state()
    collect = state["collect"]
    assert (collect["status"], collect["exit_code"], collect["timed_out"]) == ("ok", 0, False)
    # each argument arrives as written: no shell split or expanded them
    assert "uploaded ['a b', '$HOME;rm -rf /']" in collect["excerpt"]
    assert collect["started_at"] >= state["ended_at"]


def test_a_failed_run_collects_too_and_a_hung_upload_is_ended_at_its_timeout(run: Run) -> None:
    hang = [sys.executable, "-c", "import time; print('uploading', flush=True); time.sleep(60)"]
    run.configure(trainers.CRASH_MID_RUN, max_attempts=1, collect={"command": hang, "timeout_s": 1})
    done = run.run(timeout=30)
    state = run.state()
    assert state["status"] == "failed", done.stderr
    collect = state["collect"]
    assert (collect["status"], collect["timed_out"]) == ("failed", True)
    assert "uploading" in collect["excerpt"]


def test_a_missing_upload_program_fails_with_its_exit_code(run: Run) -> None:
    run.configure(trainers.TQDM_OK, collect={"command": ["no-such-uploader-xyz"]})
    run.run()
    collect = run.state()["collect"]
    assert (collect["status"], collect["exit_code"]) == ("failed", 127)


@pytest.mark.parametrize("bad", ["huggingface-cli upload x", [], [""], {"command": 1}])
def test_a_command_that_is_not_an_argument_list_is_refused(bad: object) -> None:
    doc = {"run": "t", "run_dir": "/tmp/t", "command": "true"}
    section = bad if isinstance(bad, dict) else {"command": bad}
    with pytest.raises(ConfigError) as caught:
        parse_config({**doc, "collect": section})
    assert caught.value.field.startswith("collect")


def test_the_watchers_run_json_carries_the_command_the_supervisor_accepts() -> None:
    collect = CollectConfig(to="command", command=["huggingface-cli", "upload", "me/m", "out"])
    run = RunConfig(
        name="m", run_dir="/w/m", command="python t.py", host="h", collect=collect,
        collect_timeout="30m",
    )  # fmt: skip
    parsed = parse_config(run_json(run))
    assert parsed.collect is not None
    assert (parsed.collect.command, parsed.collect.timeout_s) == (collect.command, 1800.0)
    local = run.model_copy(update={"collect": CollectConfig(paths=["out"])})
    assert "collect" not in run_json(local)  # a local pull needs nothing of the supervisor
