"""What a human reads: log context around the last traceback, summaries, advice. Pure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.messages import (
    advice,
    alert_message,
    cost_usd,
    last_metric_line,
    log_context,
    recovery_message,
    summary_pairs,
    terminal_message,
)
from core.models import MessageKind
from core.protocol import Failure, FailureKind, ProbeSnapshot
from core.rules import Finding
from core.text import capped_line
from tests.core.builders import RUN, T0, at, failure, fix, make_probe, make_state, state_doc

LINE = "2026-11-28T03:12:09Z running 2/3 41200/90000 97% 71.3/80.0G oom llama-ft"


def traceback(error: str, frame: str = "train.py") -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "{frame}", line 88, in <module>\n'
        "    trainer.train()\n"
        f"{error}\n"
    )


def probe_with_log(text: str, **state: Any) -> ProbeSnapshot:
    return make_probe(at(10), state_doc(**state), log_text=text)


def bars(start: int, stop: int) -> str:
    return "".join(
        f"\r{p:3d}%|{'#' * (p // 10):<10}| {p}/100 [00:{p:02d}<00:10]" for p in range(start, stop)
    )


# -- log context ------------------------------------------------------------------------------


def test_context_is_around_the_last_traceback() -> None:
    text = (
        "".join(f"step {i} loss 2.0\n" for i in range(30))
        + traceback("ValueError: first", frame="old.py")
        + "".join(f"step {i} loss 1.0\n" for i in range(30, 60))
        + traceback("RuntimeError: second")
    )
    context = log_context(probe_with_log(text), None)
    assert "RuntimeError: second" in context
    assert "Traceback (most recent call last):" in context
    assert not any("first" in line or "old.py" in line for line in context)
    assert context[0] == "step 55 loss 1.0"  # a few lines of lead-in


def test_the_last_traceback_is_found_when_tqdm_redraws_its_bar_after_it() -> None:
    text = (
        "step 1 loss 2.0\n"
        + traceback("RuntimeError: CUDA error: device-side assert triggered")
        + bars(0, 100)
        + "\n"
    )
    context = log_context(probe_with_log(text), None)
    assert "RuntimeError: CUDA error: device-side assert triggered" in context
    assert "Traceback (most recent call last):" in context
    # Redraws collapse to what a terminal would show: one bar line, the final one.
    bar_lines = [line for line in context if "%|" in line]
    assert bar_lines == [" 99%|######### | 99/100 [00:99<00:10]"]


def test_a_traceback_printed_on_the_bars_line_is_found() -> None:
    text = bars(0, 20) + traceback("torch.OutOfMemoryError: CUDA out of memory.") + bars(20, 40)
    context = log_context(probe_with_log(text), None)
    assert any(line.endswith("Traceback (most recent call last):") for line in context)
    assert "torch.OutOfMemoryError: CUDA out of memory." in context


def test_context_strips_ansi_and_nuls() -> None:
    text = "\x1b[31mRuntimeError: boom\x1b[0m\x00\x00\n\x1b[2Kstep 3\n"
    context = log_context(probe_with_log(text), None)
    assert "RuntimeError: boom" in context
    assert all("\x1b" not in line and "\x00" not in line for line in context)


def test_an_error_marker_without_a_traceback_gives_the_lines_before_it() -> None:
    text = "".join(f"line {i}\n" for i in range(40)) + "Segmentation fault (core dumped)\nbye\n"
    context = log_context(probe_with_log(text), None)
    assert context[0] == "line 20"
    assert context[-2:] == ("Segmentation fault (core dumped)", "bye")


def test_a_retry_shows_the_failure_excerpt_of_the_attempt_it_replaces() -> None:
    excerpt = "\n\nloading\nModuleNotFoundError: No module named 'einops'\n\n"
    state = make_state(attempt=2, last_failure=failure(1, "missing_module", 1, excerpt))
    probe = make_probe(at(3), state_doc(attempt=2), log_text="starting attempt 2\n")
    context = log_context(probe, state, retry=True)
    assert context == ("loading", "ModuleNotFoundError: No module named 'einops'")


def test_a_failed_run_without_new_log_text_shows_its_failure_excerpt() -> None:
    state = make_state(
        status="failed",
        outcome="budget_exhausted",
        last_failure=failure(3, "oom", 1, "torch.OutOfMemoryError: CUDA out of memory"),
    )
    assert log_context(None, state) == ("torch.OutOfMemoryError: CUDA out of memory",)


def test_otherwise_the_tail_is_the_context() -> None:
    probe = make_probe(at(3), state_doc(), tail=["a", "b\x1b[0m", "c"])
    assert log_context(probe, None) == ("a", "b", "c")
    assert log_context(None, None) == ()


def test_long_lines_are_cut_keeping_their_start_and_end() -> None:
    cut = capped_line("start " + "x" * 10_000 + " RuntimeError: the end")
    assert len(cut) <= 400
    assert cut.startswith("start ") and cut.endswith("RuntimeError: the end")
    assert " … " in cut


# -- alerts and recoveries ----------------------------------------------------------------------


def test_an_alert_carries_the_status_line_reasons_and_context() -> None:
    findings = [Finding("attempt:2", "attempt 2/3 started", event=True), Finding("low_gpu", "3%")]
    message = alert_message(RUN, LINE, findings, ["ctx"])
    assert message.kind is MessageKind.ALERT
    assert message.title == "⚠ llama-ft: retrying; GPU idle"
    assert message.status_line == LINE
    assert message.reasons == ("attempt 2/3 started", "3%")
    assert message.log_lines == ("ctx",)


def test_a_recovery_is_one_short_message() -> None:
    message = recovery_message(RUN, LINE, ["low_gpu", "slow"])
    assert message.kind is MessageKind.RECOVERY
    assert message.title == "✓ llama-ft: recovered (GPU idle, throughput down)"
    assert message.reasons == message.log_lines == ()


# -- summaries --------------------------------------------------------------------------------


def summary(**state: Any) -> dict[str, str]:
    pairs = summary_pairs(
        make_state(**state),
        ["step 900 loss 1.20", "{'eval_loss': 0.91, 'epoch': 3.0}", "saving model"],
        dph_total=2.5,
        launched_at=T0 - timedelta(minutes=6),
        now=at(120),
        instance="12345",
    )
    return dict(pairs)


def test_a_done_summary_has_duration_attempts_fixes_step_metric_and_cost() -> None:
    got = summary(
        status="done",
        outcome="completed",
        attempt=2,
        step=90000,
        total_steps=90000,
        ended_at=at(90),
        fixes=[fix(1, "oom", "eval_batch_size 64 -> 32")],
    )
    assert got["outcome"] == "done (completed)"
    assert got["duration"] == "1h30m"
    assert got["attempts"] == "2/3"
    assert got["fixes"] == "oom (ok)"
    assert got["last step"] == "90000/90000"
    assert got["last metric"] == "{'eval_loss': 0.91, 'epoch': 3.0}"
    assert got["cost"] == "$5.25"  # 2.1 h since launch x $2.50/h
    assert got["instance"] == "12345"
    assert "root cause" not in got and "next change" not in got


def test_an_unknown_price_is_said_plainly() -> None:
    pairs = dict(
        summary_pairs(
            make_state(status="done"),
            [],
            dph_total=None,
            launched_at=T0,
            now=at(60),
            instance="-",
        )
    )
    assert pairs["cost"] == "unknown (no $/h)"
    assert pairs["last metric"] == "-"
    assert pairs["fixes"] == "none"
    assert cost_usd(1.5, 0.4) == 0.6


def test_a_failed_summary_names_the_root_cause_and_the_next_change() -> None:
    got = summary(
        status="failed",
        outcome="budget_exhausted",
        attempt=3,
        step=0,
        knobs={"eval_batch_size": 4},
        last_failure=failure(3, "oom", 1),
    )
    assert got["root cause"] == "oom (exit 1)"
    assert "eval_batch_size=4" in got["next change"]
    assert got["last step"] == "0"


def test_a_failed_run_without_a_classified_failure_still_gets_advice() -> None:
    got = summary(status="failed", outcome="unfixable")
    assert got["root cause"] == "unknown"
    assert got["next change"]


def test_every_failure_kind_has_its_own_advice() -> None:
    tips = {kind: advice(Failure(attempt=1, kind=kind, exit_code=137), {}) for kind in FailureKind}
    assert len(set(tips.values())) == len(FailureKind)
    assert "no eval knob declared" in tips[FailureKind.OOM]
    assert "137" in tips[FailureKind.SIGNAL]
    assert "build-essential" in tips[FailureKind.MISSING_BUILD_TOOL]


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (["epoch 1 loss: 0.5", "Traceback (most recent call last):"], "epoch 1 loss: 0.5"),
        (["accelerate config written", "nothing here"], None),
        (["\x1b[32mtrain_loss=0.25\x1b[0m"], "train_loss=0.25"),
    ],
)
def test_the_last_metric_line(tail: list[str], expected: str | None) -> None:
    assert last_metric_line(tail) == expected


def test_a_terminal_message_shows_logs_only_for_a_failure() -> None:
    done = make_state(status="done", outcome="early_stopped")
    failed = make_state(status="failed", outcome="budget_exhausted")
    ok = terminal_message(RUN, LINE, done, (("a", "b"),), ["ctx"])
    bad = terminal_message(RUN, LINE, failed, (), ["ctx"])
    assert ok.kind is bad.kind is MessageKind.TERMINAL
    assert ok.title == "✅ llama-ft: done (early_stopped)"
    assert ok.log_lines == ()
    assert ok.summary == (("a", "b"),)
    assert bad.title == "⛔ llama-ft: failed (budget_exhausted)"
    assert bad.log_lines == ("ctx",)


def test_a_run_that_ended_short_is_a_warning_with_its_reason_and_advice() -> None:
    short = make_state(status="done", outcome="ended_short", step=15, total_steps=100)
    message = terminal_message(RUN, LINE, short, (), ["ctx"])
    assert message.title == "⚠ llama-ft: done (ended_short)"
    assert message.reasons == (
        "exit 0 at step 15/100, below its own total, with no early-stop message: "
        "not counted as completed",
    )
    assert message.log_lines == ("ctx",)
    got = summary(status="done", outcome="ended_short", step=15, total_steps=100)
    assert "exited 0 below its own total" in got["next change"]
    assert "next change" not in summary(status="done", outcome="completed")


def test_gpu_faults_and_transient_failures_get_advice_of_their_own() -> None:
    gpu = advice(Failure(attempt=1, kind=FailureKind.GPU_FAULT, exit_code=1), {})
    net = advice(Failure(attempt=1, kind=FailureKind.TRANSIENT, exit_code=1), {})
    assert "CUDA_LAUNCH_BLOCKING=1" in gpu and "another instance" in gpu
    assert "5xx" in net and "every retry" in net


def test_missing_module_advice_names_the_module() -> None:
    excerpt = "ModuleNotFoundError: No module named 'torchvison'\nsleepwatch: module 'torchvison'"
    tip = advice(Failure(attempt=1, kind=FailureKind.MISSING_MODULE, excerpt=excerpt), {})
    assert tip.startswith("module 'torchvison' is missing and was not installed")
    assert "pip.allow" in tip
