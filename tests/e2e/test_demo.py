"""`sleepwatch demo`: each scenario really runs a supervisor and a trainer on this machine; its
output and exit code are what a newcomer and a script see."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.demo import run_demo

STATUS_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (starting|running|retrying|done|failed|stopped) "
    r"\d+/\d+ (\d+/\d+|\d+|-) (\d+%|-) (\S+G|-) \S+ demo-[\w-]+$"
)


async def scenario_output(name: str, tmp_path: Path) -> tuple[int, str, list[str]]:
    out = io.StringIO()
    code = await run_demo(name, out=out, workdir=tmp_path)
    text = out.getvalue()
    lines = [line for line in text.splitlines() if STATUS_LINE.match(line)]
    return code, text, lines


def kinds(text: str) -> list[str]:
    return re.findall(r"^\[(alert|terminal|recovery|info)\]", text, re.MULTILINE)


async def test_default_scenario_shows_oom_fix_retry_and_done(tmp_path: Path) -> None:
    code, text, lines = await scenario_output("oom", tmp_path)
    assert code == 0
    assert lines and lines[-1].split()[1] == "done"
    assert "attempt 2/3 started after oom" in text
    assert "eval_batch_size 64 -> 32" in text
    assert "torch.OutOfMemoryError: CUDA out of memory" in text
    assert kinds(text) == ["alert", "terminal"]
    assert "fixes: oom (ok)" in text
    assert "the policy would destroy it" in text
    assert any(" oom demo-oom" in line for line in lines)  # the fix column
    # its outputs come home, verified, before the end is told (the demo collects them)
    assert re.search(r"outputs: \d+ files, [\d.]+ [KM]B in …/outputs/demo-oom, verified", text)
    outputs = tmp_path / "state" / "outputs" / "demo-oom"
    assert (outputs / "checkpoint-final" / "model.bin").stat().st_size == 256 * 1024
    assert (outputs / "attempts" / "1.log").exists()  # the failed attempt's log too
    # a picture of the run: the loss as a sparkline, the chart as a PNG beside the store
    loss = re.search(r"^loss: [▁▂▃▄▅▆▇█]+ ([\d.]+) → ([\d.]+)$", text, re.MULTILINE)
    assert loss is not None and float(loss[1]) > float(loss[2]), text  # the demo's loss falls
    chart = tmp_path / "state" / "charts" / "demo-oom.png"
    assert f"chart: {chart}" in text
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


async def test_crash_scenario_fails_and_names_the_root_cause(tmp_path: Path) -> None:
    code, text, lines = await scenario_output("crash", tmp_path)
    assert code == 1
    assert lines[-1].split()[1] == "failed"
    assert "root cause: error: RuntimeError: loss is NaN at step 8" in text  # the exception
    assert "next change:" in text
    assert "RuntimeError: loss is NaN at step 8" in text
    assert kinds(text)[-1] == "terminal"
    # failed runs collect too: the failed attempt's log comes home, verified, before the end
    assert re.search(r"outputs: \d+ files?, [\d.]+ [KM]?B in …/outputs/demo-crash, verified", text)
    failed_log = tmp_path / "state" / "outputs" / "demo-crash" / "attempts" / "1.log"
    assert "RuntimeError: loss is NaN at step 8" in failed_log.read_text()


async def test_stall_scenario_kills_once_then_completes(tmp_path: Path) -> None:
    code, text, lines = await scenario_output("stall", tmp_path)
    assert code == 0
    assert text.count("killing attempt to retry") == 1
    # one message for the episode: the kill says "retrying"; the retry it caused adds none
    assert "[alert] ⚠ demo-stall stalled — attempt killed, retrying" in text
    assert "attempt 2/3 started after killed" not in text
    assert kinds(text) == ["alert", "terminal"]
    assert "fixes: stall (attempt 1 killed, retried)" in text
    assert "needs a human" not in text
    assert lines[-1].split()[1] == "done"


async def test_missing_module_scenario_installs_the_wheel_and_completes(tmp_path: Path) -> None:
    code, text, _ = await scenario_output("missing-module", tmp_path)
    assert code == 0
    assert "a fix was applied (ok)" in text
    assert "    fix applied: pip install sleepwatch-demo-dep" in text  # quoted, not a bullet
    assert "fixes: missing_module (ok)" in text


async def test_healthy_scenario_is_silent_until_the_one_terminal_message(tmp_path: Path) -> None:
    code, text, lines = await scenario_output("healthy", tmp_path)
    assert code == 0
    assert kinds(text) == ["terminal"]
    assert len(lines) >= 2  # one status line per check


@pytest.mark.slow
def test_cli_demo_exits_with_the_scenario_code(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("sleepwatch")
    result = subprocess.run(
        [str(exe), "demo", "--scenario", "crash"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "root cause" in result.stdout
