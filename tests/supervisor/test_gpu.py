"""GPU readings through a real supervisor subprocess: a fake `pynvml` first on its path (NVML),
recorded `nvidia-smi` output replayed by a stand-in on PATH (the fallback), and neither ("no
GPU"). Parsers are fed output recorded from real nvidia-smi runs (gpu_recorded/README.md)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from supervisor.gpu import parse_smi, throttle_names
from tests.supervisor.conftest import ROOT, Run, cli

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "gpu_recorded"
FAKE_NVML = HERE / "fake_nvml"
H100 = {
    "util": 97,
    "mem_util": 41,
    "used_mb": 70000,
    "total_mb": 81559,
    "temp": 61,
    "power_mw": 612000,
    "limit_mw": 700000,
    "throttle": 0x4 | 0x1,
    "ecc": 0,
}


def env(tmp: Path, nvml: dict[str, Any] | None, smi: str | None = None, code: int = 0):
    """The supervisor's environment: the fake NVML on its path when `nvml` is given, and on
    PATH an `nvidia-smi` that prints `smi` (a recorded file) with exit status `code`."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    if smi is not None:
        stand_in = bin_dir / "nvidia-smi"
        stand_in.write_text(f"#!/bin/sh\ncat {json.dumps(str(RECORDED / smi))}\nexit {code}\n")
        stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    paths = [str(FAKE_NVML)] if nvml is not None else []
    result = dict(os.environ)
    result["PATH"] = f"{bin_dir}:{os.path.dirname(sys.executable)}:/usr/bin:/bin"
    result["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT)])
    result["FAKE_NVML"] = json.dumps(nvml or {})
    return result


def probe(tmp: Path, environ: dict[str, str]) -> dict[str, Any]:
    (tmp / "rd").mkdir(exist_ok=True)
    done = cli("probe", "--run-dir", str(tmp / "rd"), env=environ)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_nvml_gives_every_reading_per_gpu(tmp_path: Path) -> None:
    spare = {**H100, "util": 0, "used_mb": 3, "power_mw": 70000, "throttle": 0x1}
    doc = probe(tmp_path, env(tmp_path, {"gpus": [H100, spare]}))
    assert doc["gpu_status"] == {"status": "ok", "source": "nvml", "error": None}
    first, second = doc["gpus"]
    assert first == {
        "index": 0,
        "util_pct": 97.0,
        "mem_util_pct": 41.0,
        "mem_used_mb": 70000.0,
        "mem_total_mb": 81559.0,
        "temp_c": 61.0,
        "power_w": 612.0,
        "power_limit_w": 700.0,
        "throttle": ["sw_power_cap"],  # GpuIdle is not trouble
        "ecc_uncorrected": 0,
    }
    assert (second["index"], second["util_pct"], second["throttle"]) == (1, 0.0, [])


def test_a_reading_the_card_does_not_support_is_unknown_not_zero(tmp_path: Path) -> None:
    consumer = {k: v for k, v in H100.items() if k not in ("ecc", "power_mw", "throttle")}
    (gpu,) = probe(tmp_path, env(tmp_path, {"gpus": [consumer]}))["gpus"]
    assert gpu["util_pct"] == 97.0
    assert gpu["ecc_uncorrected"] is None and gpu["power_w"] is None and gpu["throttle"] is None


def test_a_lost_gpu_is_named_and_the_others_still_read(tmp_path: Path) -> None:
    doc = probe(tmp_path, env(tmp_path, {"gpus": [H100, {"lost": True}]}))
    assert doc["gpu_status"]["status"] == "ok"
    lost = doc["gpus"][1]
    assert lost["util_pct"] is None and "GPU 1" in lost["error"]


def test_no_driver_and_no_nvidia_smi_is_no_gpu(tmp_path: Path) -> None:
    doc = probe(tmp_path, env(tmp_path, {"init_error": 9}))  # NVML_ERROR_DRIVER_NOT_LOADED
    assert doc["gpus"] == [] and doc["gpu_status"]["status"] == "none"
    # no fake: the real nvidia-ml-py finds no NVML library here, and there is no nvidia-smi
    doc = probe(tmp_path, env(tmp_path, None))
    assert doc["gpus"] == [] and doc["gpu_status"]["status"] == "none"


def test_a_gpu_stack_that_does_not_answer_is_unreadable_not_absent(tmp_path: Path) -> None:
    doc = probe(tmp_path, env(tmp_path, {"init_error": 999}))  # NVML_ERROR_UNKNOWN
    assert doc["gpu_status"]["status"] == "unreadable" and "nvmlInit" in doc["gpu_status"]["error"]
    # no NVML, and nvidia-smi prints what a machine with its driver not loaded prints
    doc = probe(tmp_path, env(tmp_path, None, smi="no_driver.txt", code=9))
    status = doc["gpu_status"]
    assert (status["status"], status["source"]) == ("unreadable", "nvidia-smi")
    assert "couldn't communicate with the NVIDIA driver" in status["error"]


def test_recorded_nvidia_smi_csv_becomes_a_reading() -> None:
    query = (
        "power.limit,power.min_limit,power.max_limit,memory.total,vbios_version,driver_version,"
        "name,gpu_uuid,power.draw,temperature.gpu,temperature.memory,clocks.current.graphics,"
        "clocks.sm,clocks.mem,utilization.gpu,utilization.memory,fan.speed,"
        "pcie.link.width.current,pstate"
    ).split(",")
    text = (RECORDED / "rtx2080_noheader_nounits.csv").read_text()
    (gpu,) = parse_smi(text, query)
    assert gpu == {
        "index": 0,
        "power_limit_w": 200.0,
        "mem_total_mb": 7979.0,
        "power_w": 177.0,
        "temp_c": 45.0,
        "util_pct": 86.0,
        "mem_util_pct": 55.0,
    }


def test_nvidia_smi_lines_that_do_not_fit_the_query_are_skipped() -> None:
    text = (RECORDED / "rtx2080_noheader_nounits.csv").read_text()
    assert parse_smi(text, ["index", "utilization.gpu"]) == []
    assert parse_smi((RECORDED / "no_driver.txt").read_text(), ["index"]) == []


def test_throttle_bits_name_only_the_troublesome_reasons() -> None:
    assert throttle_names(0x1 | 0x2) == []
    assert throttle_names(0x4 | 0x40 | 0x80) == ["sw_power_cap", "hw_thermal", "hw_power_brake"]


def test_a_real_supervisor_writes_nvml_readings_into_state(run: Run, tmp_path: Path) -> None:
    run.configure("import time\nprint('step 1/2', flush=True)\ntime.sleep(0.6)\n")
    done = cli("run", "--config", str(run.config_path), env=env(tmp_path, {"gpus": [H100, H100]}))
    assert done.returncode == 0, done.stderr
    state = run.state()
    assert [g["power_w"] for g in state["gpus"]] == [612.0, 612.0]
    assert state["gpu_status"]["source"] == "nvml"


def test_a_real_supervisor_writes_its_recent_medians_while_the_trainer_prints(
    run: Run, tmp_path: Path
) -> None:
    script = (
        "import time\nfor i in range(15):\n"
        "    print(f'step {i}/15', flush=True)\n    time.sleep(0.1)\n"
    )
    run.configure(script, heartbeat_s=0.1)
    done = cli("run", "--config", str(run.config_path), env=env(tmp_path, {"gpus": [H100, H100]}))
    assert done.returncode == 0, done.stderr
    recent = run.state()["gpu_recent"]
    assert recent["readings"] >= 4 and recent["span_s"] > 0
    assert [(g["index"], g["util_pct"], g["power_w"]) for g in recent["gpus"]] == [
        (0, 97.0, 612.0),
        (1, 97.0, 612.0),
    ]
