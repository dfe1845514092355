"""Real-GPU check of the supervisor's GPU readings, for a machine with an NVIDIA GPU.

    python -m bench.gpu_check [--record DIR] [--load-s 8]

There is no GPU where sleepwatch is developed, so the NVML and nvidia-smi paths are tested
there with a fake NVML module and nvidia-smi output recorded elsewhere. This script closes the
gap on a real machine, with the real driver:
1. `supervisor.gpu` through NVML (nvidia-ml-py's pynvml) and through `nvidia-smi`, side by side:
   the same GPUs, the same memory, utilisation and power within a sampling tolerance;
2. with torch available: a few seconds of matmuls on GPU 0 must read as busy at high power,
   and the GPU idle afterwards must read as idle (the stall rule's "GPU idle");
3. the real `python -m supervisor probe` answer (gpu_status ok, source nvml);
4. `--record DIR`: nvidia-smi's own output for the supervisor's query, with and without header
   and units, to commit under tests/supervisor/gpu_recorded/ (with the driver version).
Writes bench/results/gpu_check.json; exit 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import write_result
from supervisor import gpu

ROOT = Path(__file__).resolve().parent.parent


def _smi(*args: str) -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    done = subprocess.run([smi, *args], capture_output=True, timeout=30, check=False)
    return done.stdout.decode("utf-8", "replace")


def record(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    query = "--query-gpu=" + ",".join(gpu.SMI_FIELDS)
    driver = _smi("--query-gpu=driver_version,name", "--format=csv,noheader").strip()
    files = {
        "this_query_noheader_nounits.csv": _smi(query, "--format=csv,noheader,nounits"),
        "this_query_header_units.csv": _smi(query, "--format=csv"),
        "driver.txt": driver + "\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    return sorted(files)


def _busy_gpu(seconds: float, stop: threading.Event) -> None:
    import torch  # type: ignore[import-not-found]

    a = torch.randn(8192, 8192, device="cuda")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()


def _sample(reader: Any, seconds: float) -> list[dict[str, Any]]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(reader())
        time.sleep(0.5)
    return samples


def load_check(load_s: float) -> dict[str, Any]:
    try:
        import torch  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return {"skipped": "torch not installed"}
    stop = threading.Event()
    worker = threading.Thread(target=_busy_gpu, args=(load_s, stop))
    worker.start()
    time.sleep(2.0)  # let the kernels start and NVML's sample window fill
    busy = _sample(lambda: gpu.read_gpu_report()["gpus"][0], max(1.0, load_s - 3.0))
    stop.set()
    worker.join()
    time.sleep(3.0)
    idle = _sample(lambda: gpu.read_gpu_report()["gpus"][0], 3.0)

    def peak(rows: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return max(values) if values else None

    busy_util, idle_util = peak(busy, "util_pct"), peak(idle, "util_pct")
    power, limit = peak(busy, "power_w"), peak(busy, "power_limit_w")
    share = None if power is None or not limit else power / limit
    return {
        "busy_util_peak": busy_util,
        "busy_power_share_peak": share,
        "idle_util_peak": idle_util,
        "busy_reads_busy": busy_util is not None and busy_util >= 50,
        "busy_reads_working_power": share is not None and share >= 0.35,
        "idle_reads_idle": idle_util is not None and idle_util < 10,
    }


def compare(nvml: dict[str, Any], smi: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = list(zip(nvml["gpus"], smi, strict=False))
    mem_ok = all(
        a.get("mem_total_mb") is not None
        and b.get("mem_total_mb") is not None
        and abs(a["mem_total_mb"] - b["mem_total_mb"]) <= 2
        for a, b in pairs
    )
    return {
        "gpus_nvml": len(nvml["gpus"]),
        "gpus_smi": len(smi),
        "same_count": len(nvml["gpus"]) == len(smi),
        "same_total_memory": mem_ok,
    }


def main(record_dir: Path | None = None, load_s: float = 8.0) -> dict[str, Any]:
    nvml = gpu._from_nvml()
    report = gpu.read_gpu_report()
    text = _smi("--query-gpu=" + ",".join(gpu.SMI_FIELDS), "--format=csv,noheader,nounits")
    smi = gpu.parse_smi(text, gpu.SMI_FIELDS)
    with tempfile.TemporaryDirectory() as probe_dir:
        probe = subprocess.run(
            [sys.executable, "-m", "supervisor", "probe", "--run-dir", probe_dir],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
    probe_doc = json.loads(probe.stdout or b"{}")
    doc: dict[str, Any] = {
        "report": report,
        "nvml": nvml,
        "smi": smi,
        "compare": compare(nvml or {"gpus": []}, smi),
        "probe_gpu_status": probe_doc.get("gpu_status"),
        "load": load_check(load_s) if report["status"] == "ok" else {"skipped": "no GPU"},
    }
    if record_dir is not None:
        doc["recorded"] = record(record_dir)
    checks = [
        report["status"] == "ok",
        nvml is not None and nvml["status"] == "ok",
        doc["compare"]["same_count"] and doc["compare"]["same_total_memory"],
        (doc["probe_gpu_status"] or {}).get("status") == "ok",
        all(v for k, v in doc["load"].items() if k.startswith(("busy_reads", "idle_reads"))),
    ]
    doc["ok"] = all(checks)
    print(json.dumps(doc, indent=2, default=str))
    print(f"wrote {write_result('gpu_check', doc, quick=False)}")
    return doc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="write nvidia-smi's own output here")
    parser.add_argument("--load-s", type=float, default=8.0)
    args = parser.parse_args()
    raise SystemExit(0 if main(args.record, args.load_s)["ok"] else 1)
