"""Pure reading of failures: what the supervisor names in a recorded log, and the machine
readings it adds at the failure (free disk, the kernel's OOM killer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor import failctx, patterns
from supervisor.classify import classify, signal_of
from supervisor.logread import tail_lines
from supervisor.pipnames import close_match, dist_for_module, requirement_names
from supervisor.progress import ProgressTracker

LOGS = Path(__file__).parent / "corpus" / "logs"


def recorded(case: str, exit_code: int = 1):
    return classify(exit_code, tail_lines(str(LOGS / f"{case}.log"), 80))


@pytest.mark.parametrize(
    ("case", "tool", "ninja"),
    [
        ("bt_pip_gcc", "gcc", False),
        ("bt_pip_gxx", "g++", False),
        ("bt_cpp_extension_cxx", "c++", False),  # `/bin/sh: 1: c++: not found`
        ("bt_cpp_extension_ninja", "ninja", True),
        ("bt_inductor", "c++", False),
        ("bt_cmake", "cmake", False),
        ("bt_make", "make", False),
        ("bt_python_h", "Python.h", False),
    ],
)
def test_the_missing_build_tool_is_named_and_only_ninja_asks_for_ninja(
    case: str, tool: str, ninja: bool
) -> None:
    failure = recorded(case)
    assert (failure.kind, failure.tool, failure.needs_ninja) == ("missing_build_tool", tool, ninja)
    assert f"sleepwatch: missing build tool: {tool}" in failure.excerpt


def test_a_command_typo_that_sh_cannot_find_is_not_a_missing_build_tool() -> None:
    assert recorded("err_command_not_found", 127).kind == "error"


@pytest.mark.parametrize(
    ("case", "module", "dist"),
    [
        ("mm_cv2", "cv2", "opencv-python"),
        ("mm_typo_torchvison", "torchvison", None),
        ("mm_python_m", "trainer_pkg", None),
        ("mm_inside_library", "timm", "timm"),
    ],
)
def test_the_missing_module_comes_from_the_final_exception_only(
    case: str, module: str, dist: str | None
) -> None:
    failure = recorded(case)
    assert (failure.kind, failure.module, failure.dist) == ("missing_module", module, dist)


def test_a_module_error_printed_by_a_dataset_row_is_not_the_failure() -> None:
    failure = recorded("err_printed_module_text")
    assert (failure.kind, failure.module) == ("error", None)


def test_a_typo_is_never_a_distribution_but_gets_a_suggestion() -> None:
    assert dist_for_module("torchvison") is None
    assert close_match("torchvison") == "torchvision"
    assert dist_for_module("einops") == "einops"
    assert dist_for_module("swinternal", allow={"swinternal": "sw-internal"}) == "sw-internal"
    assert dist_for_module("my_lib.sub", required=["My-Lib"]) == "my-lib"
    assert dist_for_module("my_lib", required=["other"]) is None


def test_requirement_names_come_from_the_users_files(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "# pinned\nEinops==0.8.0  # tensors\n-r other.txt\n--index-url http://x\nrich>=13\n"
    )
    (tmp_path / "constraints.txt").write_text("timm<2\n")
    assert requirement_names([str(tmp_path)]) == ["Einops", "rich", "timm"]


@pytest.mark.parametrize(
    ("code", "signum"),
    [(-15, 15), (143, 15), (139, 11), (137, 9), (124, None), (1, None), (0, None), (None, None)],
)
def test_a_signal_is_read_from_popen_or_from_a_shell(code: int | None, signum: int | None) -> None:
    assert signal_of(code) == signum


def test_exit_124_is_the_commands_own_timeout() -> None:
    failure = recorded("timeout_124", 124)
    assert failure.kind == "signal" and "`timeout` ran out" in failure.excerpt


# CUDA failures cannot be recorded on this machine (no GPU); corpus/record_gpu.py records
# them where one is. Until then these lines follow torch's and NCCL's own message texts.
@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("RuntimeError: CUDA error: device-side assert triggered", "gpu_fault"),
        ("RuntimeError: CUDA error: an illegal memory access was encountered", "gpu_fault"),
        (
            "[Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5, "
            "OpType=ALLREDUCE) ran for 600000 milliseconds before timing out.",
            "gpu_fault",
        ),
        ("RuntimeError: CUDA error: uncorrectable ECC error encountered", "gpu_fault"),
        (
            "RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1191, unhandled system error,"
            " NCCL version 2.18.1",
            "gpu_fault",
        ),
        ("torch.distributed.DistBackendError: ncclSystemError: System call failed", "gpu_fault"),
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.", "oom"),
        ("RuntimeError: CUDA error: out of memory", "oom"),
        ("RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate`", "oom"),
    ],
)
def test_gpu_failures_not_yet_recorded(text: str, kind: str) -> None:
    assert classify(1, ["Traceback (most recent call last):", '  File "t.py"', text]).kind == kind


def test_a_full_filesystem_is_low_and_a_pseudo_filesystem_is_ignored(tmp_path: Path) -> None:
    readings = [("/run", 0.004, 1.0), ("/data", 50_000.0, 100_000.0), ("/tiny", 30.0, 100.0)]
    assert failctx.low_disk(readings, 0.0) == [("/run", 0.004, 1.0)]
    assert failctx.low_disk(readings, 40.0) == [("/run", 0.004, 1.0), ("/tiny", 30.0, 100.0)]
    note = failctx.disk_note(readings, readings[:1])
    assert note.startswith("disk full at the failure: /run 0.0 MB free of 1.0 MB;")
    assert failctx.disk_readings(["/proc", str(tmp_path), str(tmp_path / "missing")]) == [
        (str(tmp_path), *failctx.disk_readings([str(tmp_path)])[0][1:])
    ]


def test_the_kernel_oom_note_says_what_it_could_read() -> None:
    assert "unreadable" in failctx.sigkill_note(None)
    assert "something else" in failctx.sigkill_note([])
    line = "Memory cgroup out of memory: Killed process 4242 (python)"
    assert failctx.sigkill_note([line]) == "kernel OOM killer: " + line
    record = b"3,812,1234567890,-;" + line.encode() + b"\n"
    assert failctx._kmsg_line(record, since_s=1000.0) == line
    assert failctx._kmsg_line(record, since_s=2000.0) is None


def test_an_unreadable_kernel_log_is_none(tmp_path: Path) -> None:
    assert failctx.kernel_oom_lines(0.0, path=str(tmp_path / "no-kmsg")) is None


def test_the_last_traceback_chain_includes_its_causes() -> None:
    tail = [
        "step 1",
        "Traceback (most recent call last):",
        "  x",
        "HTTPStatusError: 500",
        "",
        patterns.CHAINED[0],
        "",
        "Traceback (most recent call last):",
        "  y",
        "LocalEntryNotFoundError: check your connection",
    ]
    assert patterns.traceback_chain(tail) == 1
    assert patterns.final_exception(tail) == "LocalEntryNotFoundError: check your connection"


def test_an_eval_bar_drawn_in_the_same_chunk_as_the_training_bar_is_not_progress() -> None:
    log = (LOGS / "pg_hf_trainer_complete.log").read_bytes()
    tracker = ProgressTracker()
    tracker.feed(log, now=1.0)  # the whole log at once: the eval bars come last
    assert (tracker.step, tracker.total) == (40, 40)
    tracker = ProgressTracker()
    tracker.feed(b"step 50/100\n\rWriting model shards:   0%|   | 0/1 [00:00<?, ?it/s]", 1.0)
    assert (tracker.step, tracker.total) == (50, 100)


def test_the_supervisors_own_notes_do_not_make_two_failures_differ() -> None:
    first = recorded("ho_cgroup_kill", 137).with_note("kernel OOM killer: Killed process 4242")
    second = recorded("ho_cgroup_kill", 137).with_note("kernel OOM killer: Killed process 4343")
    assert first.signature == second.signature
    assert first.signature != recorded("sig_term_self", 143).signature


def test_cmake_and_ninja_come_from_pip_without_root() -> None:
    from supervisor.config import parse_config
    from supervisor.fixes import plan_fix

    cfg = parse_config({"run": "t", "run_dir": "/tmp/t", "command": "x"})
    cmake = plan_fix(recorded("bt_cmake", 127), cfg, set(), {}, is_root=False, has_apt=False)
    assert cmake is not None and cmake.action == "pip install cmake"
    assert cmake.commands == [["python3", "-m", "pip", "install", "cmake"]]
    ninja = plan_fix(recorded("bt_cpp_extension_ninja"), cfg, set(), {}, False, False)
    assert ninja is not None and ninja.action == "pip install ninja"
    gcc = plan_fix(recorded("bt_pip_gcc"), cfg, set(), {}, is_root=True, has_apt=True)
    assert gcc is not None and gcc.action == "apt-get install build-essential"
    assert plan_fix(recorded("bt_pip_gcc"), cfg, set(), {}, False, False) is None


def test_directories_the_trainer_named_are_checked_for_free_space_too(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    out.mkdir()
    tail = [
        f"saving checkpoint to {out}/step-50",
        f'  File "{tmp_path}/train.py", line 3, in <module>',
        "RuntimeError: checkpoint writer failed",
        "see /",
    ]
    assert failctx.paths_in(tail) == [str(tmp_path), str(out)]
