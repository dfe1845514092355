"""core/supervisor_client.py: the one reader of the supervisor's answers and builder of its
command lines (issue 11). Pure reading here; over real SSH in tests/e2e/test_hostile_instance.py."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import supervisor
from core.errors import ProtocolError
from core.launch import SUPERVISOR_MODULES, SUPERVISOR_PACKAGE, LaunchRefused, supervisor_uploads
from core.local import LocalTransport
from core.models import ExecResult
from core.supervisor_client import (
    ANSWER_MARK,
    SupervisorClient,
    SupervisorExited,
    read_answer,
    supervisor_argv,
)

MARK = ANSWER_MARK.decode()


def test_the_mark_is_the_supervisors_own() -> None:
    assert supervisor.ANSWER_MARK == MARK


@pytest.mark.parametrize(
    "noise",
    [
        "",
        "Welcome to vast.ai\n",
        '{"probe": 2}\n',  # JSON-looking noise from a .bashrc
        "pyenv: shell integration not enabled\n\n\n",
        f"a line with {MARK} inside it\n",  # the mark counts only at the start of a line
    ],
)
def test_noise_before_the_answer_is_skipped(noise: str) -> None:
    stdout = f'{noise}\n{MARK}\n{{"ok": true}}\n'.encode()
    assert read_answer(stdout) == {"ok": True}


def test_an_answer_without_the_mark_is_its_last_line() -> None:
    assert read_answer(b'banner\n{"ok": false}\n') == {"ok": False}


@pytest.mark.parametrize(
    ("stdout", "words"),
    [
        (b"", "non-JSON"),
        (f"{MARK}\nnot json\n".encode(), "non-JSON"),
        (f"{MARK}\n[1, 2]\n".encode(), "a list, not an object"),
        (f"{MARK}{{}}\n".encode(), "not on a line of its own"),
        (f"{MARK}\n".encode() + b"[" * 985 + b"]" * 985, "nests deeper than 32"),
        (f"{MARK}\n".encode() + b'{"a":' * 985 + b"1" + b"}" * 985, "nests deeper"),
        (MARK.encode() + b'\n{"n": 1' + b"0" * 5000 + b"}\n", "non-JSON (ValueError)"),
    ],
)
def test_a_bad_answer_is_a_protocol_error_never_anything_else(stdout: bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        read_answer(stdout, "probe")
    assert words in str(caught.value)


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"tail": ["[" * 5000, '\\"[[[' * 100]})
    assert read_answer(f"{MARK}\n{text}\n".encode())["tail"][0] == "[" * 5000


class Answers:
    label = "answers"

    def __init__(self, *results: ExecResult) -> None:
        self.results = list(results)
        self.caps: list[int | None] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
        lasting: bool = False,
    ) -> ExecResult:
        self.caps.append(max_output_bytes)
        return self.results.pop(0)


def client(transport: Answers) -> SupervisorClient:
    return SupervisorClient(transport, "python3", "/r", 30.0)  # type: ignore[arg-type]


async def test_every_read_is_capped_and_an_overflow_is_refused() -> None:
    transport = Answers(ExecResult(-1, b"x" * 100, b"", overflow=True))
    with pytest.raises(ProtocolError, match="more than 4194304 bytes"):
        await client(transport).ctl("/run", "stop")
    assert transport.caps == [4 * 1024 * 1024]


async def test_a_failed_command_without_an_answer_says_how_it_exited() -> None:
    transport = Answers(ExecResult(127, b"", b"noise\npython3: command not found\n"))
    with pytest.raises(SupervisorExited, match="ctl exited 127: python3: command not found"):
        await client(transport).ctl("/run", "stop")


async def test_a_failed_ctl_still_gives_its_answer() -> None:
    answer = f'\n{MARK}\n{{"ok": false, "message": "no supervisor"}}\n'.encode()
    result = await client(Answers(ExecResult(3, answer, b""))).ctl("/run", "stop")
    assert (result.ok, result.message) == (False, "no supervisor")


async def test_odd_wait_answers_are_typed_and_bounded() -> None:
    answers = [
        b'{"reason": "changed", "state": {"status": "done", "attempt": null}}',
        b'{"reason": "changed", "state": {"status": "running", "attempt": 100000000000000000000}}',
    ]
    transport = Answers(*(ExecResult(0, a, b"") for a in answers))
    first = await client(transport).wait("/run", status="x", attempt=1, quiet_s=None, timeout_s=1)
    assert (first.reason, first.status, first.attempt) == ("changed", "done", 0)
    with pytest.raises(ProtocolError, match="state.attempt"):
        await client(transport).wait("/run", status="x", attempt=1, quiet_s=None, timeout_s=1)


async def test_the_command_line_runs_the_uploaded_package_isolated(tmp_path: Path) -> None:
    """-I: neither the login directory nor PYTHONPATH is on sys.path; the upload root is put
    first explicitly. Run here with a hostile `supervisor` in the working directory."""
    root = tmp_path / "root"
    shutil.copytree(SUPERVISOR_PACKAGE, root / "supervisor")
    hostile = tmp_path / "home" / "supervisor"
    hostile.mkdir(parents=True)
    (hostile / "__init__.py").write_text("raise SystemExit('hostile package imported')")
    argv = supervisor_argv(sys.executable, str(root), ["--framed", "probe", "--run-dir", "/x"])
    assert argv[:2] == [sys.executable, "-I"]
    cwd = os.getcwd()
    os.chdir(tmp_path / "home")
    try:
        result = await LocalTransport().run(argv, timeout_s=30)
    finally:
        os.chdir(cwd)
    assert result.exit_status == 0, result.stderr
    assert read_answer(result.stdout)["probe"] == 1


def test_the_upload_manifest_is_exactly_the_supervisors_modules() -> None:
    modules = sorted(p.name for p in SUPERVISOR_PACKAGE.glob("*.py"))
    assert sorted(SUPERVISOR_MODULES) == modules


def test_launch_uploads_only_the_manifest_never_a_shared_folder(tmp_path: Path) -> None:
    shared = tmp_path / "site-packages" / "supervisor"
    shutil.copytree(SUPERVISOR_PACKAGE, shared)
    (shared / "supervisord.py").write_text("# another distribution named supervisor\n")
    (shared / "medusa").mkdir()
    uploads = supervisor_uploads("/r", shared, extra=[])
    assert sorted(remote for _, remote in uploads) == sorted(
        f"/r/supervisor/{name}" for name in SUPERVISOR_MODULES
    )
    (shared / "__init__.py").write_text("# supervisord's package\n")
    with pytest.raises(LaunchRefused, match="not sleepwatch's supervisor"):
        supervisor_uploads("/r", shared, extra=[])
