"""Acceptance: real trainer subprocesses under the real supervisor CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.supervisor import trainers
from tests.supervisor.conftest import Run


def test_a_tqdm_run_completes_with_progress_read_from_the_bar(run: Run) -> None:
    run.configure(trainers.TQDM_OK)
    done = run.run()
    assert done.returncode == 0, done.stderr
    state = run.state()
    assert (state["status"], state["outcome"]) == ("done", "completed")
    assert (state["step"], state["total_steps"], state["attempt"]) == (30, 30, 1)
    assert state["ended_at"].endswith("Z") and state["last_failure"] is None


def test_a_crash_with_a_real_traceback_is_classified_and_the_same_error_twice_is_unfixable(
    run: Run,
) -> None:
    run.configure(trainers.CRASH_MID_RUN, max_attempts=3)
    run.run()
    state = run.state()
    assert (state["status"], state["outcome"]) == ("failed", "unfixable")
    assert state["attempt"] == 2  # not 3: retrying the same error without a fix cannot help
    failure = state["last_failure"]
    assert failure["kind"] == "error" and failure["exit_code"] == 1
    assert "RuntimeError: loss is nan at step 12" in failure["excerpt"]
    assert state["step"] == 12


def test_a_missing_module_is_fixed_by_installing_a_locally_built_wheel(
    run: Run, tmp_path: Path
) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    _build_wheel(tmp_path / "proj", wheels)
    pip = {
        "command": [sys.executable, "-m", "pip"],
        "install_args": [
            "--no-index",
            "--find-links",
            str(wheels),
            "--target",
            str(target),
            "--disable-pip-version-check",
            "--no-cache-dir",
        ],
    }
    (tmp_path / "requirements.txt").write_text("swtoymod==1.0\n")  # the user's: trusted
    run.configure(trainers.NEEDS_MODULE, pip=pip, env={"PYTHONPATH": str(target)})
    done = run.run(timeout=120)
    state = run.state()
    assert (state["status"], state["outcome"]) == ("done", "completed"), done.stderr
    assert state["attempt"] == 2
    assert state["last_failure"]["kind"] == "missing_module"
    [fix] = state["fixes"]
    assert (fix["kind"], fix["action"], fix["ok"], fix["attempt"]) == (
        "missing_module",
        "pip install swtoymod",
        True,
        1,
    )
    assert b"toy 42" in run.log(2)


def _build_wheel(project: Path, out: Path) -> None:
    (project / "swtoymod").mkdir(parents=True)
    (project / "swtoymod" / "__init__.py").write_text("VALUE = 42\n")
    (project / "setup.py").write_text(
        "from setuptools import setup\n"
        "setup(name='swtoymod', version='1.0', packages=['swtoymod'])\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(project),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_a_module_with_no_trusted_distribution_is_never_pip_installed(
    run: Run, tmp_path: Path
) -> None:
    marker = tmp_path / "pip-ran"
    pip = {"command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]}
    run.configure("import torchvison\n", pip=pip)
    run.run()
    state = run.state()
    assert (state["status"], state["outcome"], state["attempt"]) == ("failed", "unfixable", 1)
    assert state["fixes"] == [] and not marker.exists()
    excerpt = state["last_failure"]["excerpt"]
    assert "'torchvison' has no distribution sleepwatch can trust" in excerpt
    assert "did you mean 'torchvision'?" in excerpt


def test_a_module_on_the_run_json_allow_list_is_installed(run: Run, tmp_path: Path) -> None:
    marker = tmp_path / "pip-args"
    record = f"import sys; open({str(marker)!r}, 'w').write(' '.join(sys.argv[1:]))"
    pip = {"command": [sys.executable, "-c", record], "allow": {"swinternal": "sw-internal"}}
    run.configure("import swinternal\n", pip=pip, max_attempts=2)
    run.run()
    state = run.state()
    assert [f["action"] for f in state["fixes"]] == ["pip install sw-internal"]
    assert marker.read_text() == "install sw-internal"


def test_a_missing_module_of_the_users_own_code_fails_fast(run: Run, tmp_path: Path) -> None:
    (tmp_path / "swtoymod").mkdir()  # the user's package, but without the module asked for
    run.configure("import swtoymod.layers\n")
    run.run()
    state = run.state()
    assert (state["status"], state["outcome"], state["attempt"]) == ("failed", "unfixable", 1)
    assert state["fixes"] == []


def test_a_torch_oom_completes_after_the_eval_knob_is_halved_to_fit(run: Run) -> None:
    knobs = {"eval_batch_size": {"value": 64, "min": 4, "factor": 0.5}}
    run.configure(trainers.OOM_UNLESS_SMALL, "{eval_batch_size}", knobs=knobs, max_attempts=3)
    run.run()
    state = run.state()
    assert (state["status"], state["outcome"], state["attempt"]) == ("done", "completed", 3)
    assert state["knobs"] == {"eval_batch_size": 16}
    assert [f["action"] for f in state["fixes"]] == [
        "eval_batch_size 64 -> 32",
        "eval_batch_size 32 -> 16",
    ]
    assert state["last_failure"]["kind"] == "oom"


def test_a_run_that_fails_differently_each_time_exhausts_its_budget(run: Run) -> None:
    run.configure(trainers.DIFFERENT_ERROR_EACH_TIME, max_attempts=3)
    assert run.run().returncode == 1
    state = run.state()
    assert (state["status"], state["outcome"], state["attempt"]) == (
        "failed",
        "budget_exhausted",
        3,
    )
    assert "bad batch in attempt 3" in state["last_failure"]["excerpt"]
    assert sorted(p.name for p in (run.run_dir / "attempts").iterdir()) == [
        "1.log",
        "2.log",
        "3.log",
    ]


def test_a_failure_that_says_nothing_while_a_disk_is_full_is_disk_full_and_says_so(
    run: Run,
) -> None:
    # A floor above any real disk: every filesystem the supervisor checks is "full" now.
    run.configure("raise RuntimeError('checkpoint writer failed')\n", min_free_disk_mb=1e12)
    run.run()
    failure = run.state()["last_failure"]
    assert failure["kind"] == "disk_full"
    note = failure["excerpt"].splitlines()[-1]
    assert note.startswith("sleepwatch: disk full at the failure: ")
    assert str(run.run_dir) in note and " free of " in note


def test_a_sigkilled_trainer_is_host_oom(run: Run) -> None:
    run.configure(trainers.SIGKILL_SELF, max_attempts=2)
    run.run()
    state = run.state()
    assert state["last_failure"]["kind"] == "host_oom"
    assert state["last_failure"]["exit_code"] in (-9, 137)  # 137: reported by /bin/sh
    # The kernel's word on it, whichever this machine gives: its OOM-killer entry, none, or
    # an unreadable kernel log (containers).
    assert "sleepwatch: the trainer was ended by SIGKILL" in state["last_failure"]["excerpt"]
    assert "OOM" in state["last_failure"]["excerpt"].splitlines()[-1]
    assert (state["status"], state["outcome"], state["attempt"]) == ("failed", "unfixable", 2)


def test_a_trainer_that_stops_early_on_purpose_is_done_not_a_crash(run: Run) -> None:
    run.configure(trainers.EARLY_STOP_MARKER)
    run.run()
    state = run.state()
    assert (state["status"], state["outcome"]) == ("done", "early_stopped")


def test_the_early_stop_policy_waits_for_auto_stop_min_steps(run: Run) -> None:
    policy = {
        "metric_regex": r"'eval_loss': ([0-9.]+)",
        "mode": "min",
        "patience": 2,
        "auto_stop_min_steps": 50,
    }
    run.configure(trainers.METRIC_WORSENS, early_stop=policy)
    run.run()
    state = run.state()
    assert (state["status"], state["outcome"]) == ("done", "early_stopped")
    assert 50 <= state["step"] < 399  # stopped by the policy, but never before step 50


def test_binary_bytes_and_a_50_mb_line_without_newline_are_survived(run: Run) -> None:
    script = (
        "import sys\nout = sys.stdout.buffer\n"
        "out.write(b'\\x00\\xff\\xfe garbage \\x1b[31m red\\n')\n"
        "out.write(b'step 7/9\\n')\nout.write(b'x' * (50 * 1024 * 1024))\nout.flush()\n"
    )
    run.configure(script)
    run.run()
    state = run.state()
    assert (state["status"], state["step"], state["total_steps"]) == ("done", 7, 9)
    assert len(run.log(1)) > 50 * 1024 * 1024  # raw bytes, never re-encoded
    assert run.log(1).startswith(b"\x00\xff\xfe garbage")
