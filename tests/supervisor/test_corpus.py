"""The failure corpus: real logs recorded from real programs (tests/supervisor/corpus/,
recorded by its record.py), each replayed as a trainer through the real supervisor
(`python -m supervisor run`), and the state.json it writes held to the manifest."""

from __future__ import annotations

import json
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from supervisor.classify import KINDS
from supervisor.verdict import OUTCOMES
from tests.supervisor.conftest import cli

CORPUS = Path(__file__).parent / "corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
CASES = {case["id"]: case for case in MANIFEST["cases"]}


def _replay(case: dict[str, Any], base: Path) -> dict[str, Any]:
    work = base / case["id"]
    work.mkdir()
    for name, text in case.get("replay_files", {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    log = CORPUS / case["log"]
    command = " ".join(
        shlex.quote(part)
        for part in (sys.executable, str(CORPUS / "replay.py"), str(log), str(case["exit_code"]))
    )
    doc = {
        "run": case["id"].replace("_", "-"),
        "run_dir": str(work / "run"),
        "command": command,
        "cwd": str(work),
        "fixes": [],
        "max_attempts": 2,
        "backoff_s": 0.01,
        "heartbeat_s": 0.2,
        "kill_grace_s": 1,
        **case.get("run_json", {}),
    }
    (work / "RUN.json").write_text(json.dumps(doc))
    done = cli("run", "--config", str(work / "RUN.json"), timeout=60)
    state = json.loads((work / "run" / "state.json").read_text())
    state["_stderr"] = done.stderr.decode("utf-8", "replace")[-2000:]
    return state


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case replayed once, a few at a time (each is mostly waiting on processes)."""
    base = tmp_path_factory.mktemp("corpus")
    with ThreadPoolExecutor(max_workers=6) as pool:
        states = pool.map(lambda case: _replay(case, base), CASES.values())
        return dict(zip(CASES, states, strict=False))


def test_the_corpus_has_at_least_60_recorded_cases_with_their_logs() -> None:
    assert len(CASES) >= 60
    for case in CASES.values():
        assert (CORPUS / case["log"]).is_file(), case["id"]
        assert case["expect"]["kind"] in (*KINDS, None), case["id"]
        assert case["expect"]["outcome"] in OUTCOMES, case["id"]
    assert (CORPUS / "record.py").is_file() and (CORPUS / "record_gpu.py").is_file()


@pytest.mark.parametrize("case_id", list(CASES))
def test_a_recorded_failure_is_read_as_the_manifest_says(
    case_id: str, replayed: dict[str, dict[str, Any]]
) -> None:
    case, state = CASES[case_id], replayed[case_id]
    expect = case["expect"]
    failure = state["last_failure"] or {}
    seen = {
        "status": state["status"],
        "outcome": state["outcome"],
        "kind": failure.get("kind"),
        "step": state["step"],
        "total": state["total_steps"],
    }
    assert seen == expect, f"{case['how']}\n{failure.get('excerpt', '')}\n{state['_stderr']}"
    if failure:
        assert failure["exit_code"] == case["exit_code"]
        assert 0 < len(failure["excerpt"]) <= 1500
