"""`make test` on a machine without sshd must not look like a full pass: a real inner pytest
run with the skip guard, once plain (loud summary, still exit 0) and once as .ci/run runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SKIPPING = """
import pytest

def test_passes():
    pass

def test_needs_sshd():
    pytest.skip("/usr/sbin/sshd missing: install openssh-server to run the SSH tests")

@pytest.fixture
def sshd():
    pytest.skip("sshd needs /run/sshd")

def test_through_a_fixture(sshd):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    raise AssertionError
"""


def inner_pytest(
    tmp_path: Path, *, strict: bool, workers: int = 0
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(SKIPPING)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "SLEEPWATCH_FAIL_ON_SKIP"}
    env["PYTHONPATH"] = str(ROOT)
    if strict:
        env["SLEEPWATCH_FAIL_ON_SKIP"] = "1"
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pytest", "-p", "tests.skipguard", "-p", "no:cacheprovider"]
        + (["-n", str(workers)] if workers else [])
        + ["-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_skipped_test_is_named_loudly_with_its_reason_in_the_summary(tmp_path: Path) -> None:
    done = inner_pytest(tmp_path, strict=False)
    assert done.returncode == 0, done.stdout
    assert "2 TESTS WERE SKIPPED: NOT A FULL PASS" in done.stdout
    assert "1 skipped because: /usr/sbin/sshd missing" in done.stdout
    assert "1 skipped because: sshd needs /run/sshd" in done.stdout
    assert "test_inner.py::test_needs_sshd" in done.stdout
    assert "test_expected_failure" not in done.stdout.split("NOT A FULL PASS")[1]


def test_any_skip_fails_the_run_when_ci_asks_for_no_skips(tmp_path: Path) -> None:
    done = inner_pytest(tmp_path, strict=True)
    assert done.returncode == 1, done.stdout
    assert "skipped, and SLEEPWATCH_FAIL_ON_SKIP is set" in done.stdout
    assert "xfailed" in done.stdout  # an expected failure is not a skip


def test_ci_runs_the_readme_test_command_with_skips_forbidden() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "export SLEEPWATCH_FAIL_ON_SKIP=1" in script
    assert script.rstrip().splitlines()[-1] == "make test"


MODULE_SKIP = """
import pytest

pytest.skip("asyncssh missing", allow_module_level=True)

def test_never_collected():
    pass
"""


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "xdist"])
def test_a_module_that_skips_itself_at_import_is_counted_and_fails_strict_runs(
    tmp_path: Path, workers: int
) -> None:
    # `make test` runs under xdist, where collection happens in the workers.
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    plain = inner_pytest(tmp_path, strict=False, workers=workers)
    assert plain.returncode == 0, plain.stdout
    assert "3 TESTS WERE SKIPPED: NOT A FULL PASS" in plain.stdout
    assert "1 skipped because: asyncssh missing" in plain.stdout
    strict = inner_pytest(tmp_path, strict=True, workers=workers)
    assert strict.returncode != 0, strict.stdout
    assert "skipped, and SLEEPWATCH_FAIL_ON_SKIP is set: asyncssh missing" in strict.stdout
