"""GPU readings now: pynvml when importable, else nvidia-smi, else an empty list."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, Dict, List, Optional

Reading = Dict[str, Any]
SMI_QUERY = "--query-gpu=index,utilization.gpu,memory.used,memory.total"


def read_gpus() -> List[Reading]:
    readings = _from_nvml()
    if readings is None:
        readings = _from_smi()
    return readings or []


def _from_nvml() -> Optional[List[Reading]]:
    try:
        import pynvml  # type: ignore[import-not-found]
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        readings = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            readings.append(_reading(index, util.gpu, mem.used / 2**20, mem.total / 2**20))
        return readings
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: S110 - shutdown failing changes nothing for the reading
            pass


def _from_smi() -> List[Reading]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run(
            [smi, SMI_QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    return parse_smi(done.stdout.decode("utf-8", "replace"))


def parse_smi(text: str) -> List[Reading]:
    readings = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            readings.append(_reading(int(parts[0]), *(_num(p) for p in parts[1:])))
        except ValueError:
            continue
    return readings


def _num(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]" on some cards


def _reading(index: int, util: Any, used: Any, total: Any) -> Reading:
    def rounded(value: Any) -> Optional[float]:
        return None if value is None else round(float(value), 1)

    return {
        "index": index,
        "util_pct": rounded(util),
        "mem_used_mb": rounded(used),
        "mem_total_mb": rounded(total),
    }
