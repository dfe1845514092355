"""GPU readings now: NVML (pynvml, uploaded beside the supervisor) first, `nvidia-smi` as the
fallback, and "no GPU" as a clear answer of its own.

`read_gpu_report()` -> {"status", "source", "error", "gpus"}:
- status "ok": at least one GPU was read (a GPU whose own reading failed carries `error`);
- status "none": this machine has no NVIDIA GPU (no NVML library or driver, no nvidia-smi,
  or zero devices) - the watcher's GPU rules have nothing to judge;
- status "unreadable": a GPU stack is there but did not answer (driver not talking, GPU lost,
  nvidia-smi failing or timing out) - not the same as idle, and worth telling a human.
Every per-GPU field but `index` may be None: an old card or a vGPU answers N/A to some.

Read by supervisor.runner at each heartbeat (into state.json) and by supervisor.probe (GPU now).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, Callable, Dict, List, Optional, Sequence

Reading = Dict[str, Any]
Report = Dict[str, Any]

SMI_FIELDS = (
    "index",
    "utilization.gpu",
    "utilization.memory",
    "memory.used",
    "memory.total",
    "temperature.gpu",
    "power.draw",
    "power.limit",
)
_SMI_KEYS = {
    "index": "index",
    "utilization.gpu": "util_pct",
    "utilization.memory": "mem_util_pct",
    "memory.used": "mem_used_mb",
    "memory.total": "mem_total_mb",
    "temperature.gpu": "temp_c",
    "power.draw": "power_w",
    "power.limit": "power_limit_w",
}
# nvmlClocksThrottleReason* bits (nvml.h); GpuIdle and the clock settings are not trouble
THROTTLE_BITS = (
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x20, "sw_thermal"),
    (0x40, "hw_thermal"),
    (0x80, "hw_power_brake"),
)
# NVML return codes meaning "there is no NVIDIA driver or library here": no GPU, not a fault
NVML_ABSENT = (9, 12)  # NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND
MAX_GPUS = 64
SMI_TIMEOUT_S = 10


def read_gpu_report() -> Report:
    nvml = _from_nvml()
    if nvml is not None and nvml["status"] == "ok":
        return nvml
    smi = _from_smi()
    if nvml is None or smi["status"] != "none":
        return smi
    return nvml  # NVML's "none" or "unreadable", and no nvidia-smi to ask


def report(status: str, source: Optional[str], gpus: List[Reading], error: Any = None) -> Report:
    text = None if error is None else str(error)[:300]
    return {"status": status, "source": source, "error": text, "gpus": gpus[:MAX_GPUS]}


def as_report(value: Any) -> Report:
    """A reader may hand back a plain list (tests, older callers): a list with GPUs is "ok",
    an empty one "none"."""
    if isinstance(value, dict) and "gpus" in value:
        return value
    gpus = list(value or [])
    return report("ok" if gpus else "none", None, gpus)


def read_report_safely(reader: Callable[[], Any]) -> Report:
    """as_report(reader()); a reader that raises gives an "unreadable" report, because a
    reader failing must never stop the supervisor's heartbeat."""
    try:
        return as_report(reader())
    except Exception as exc:
        return report("unreadable", None, [], exc)


# -- NVML ---------------------------------------------------------------------------------


def _from_nvml() -> Optional[Report]:
    try:
        import pynvml  # type: ignore[import-not-found]
    except Exception:
        return None  # not uploaded, or not importable on this Python: ask nvidia-smi
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        if getattr(exc, "value", None) in NVML_ABSENT:
            return report("none", "nvml", [], exc)
        return report("unreadable", "nvml", [], "nvmlInit: %s" % (exc,))
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        gpus = [_nvml_gpu(pynvml, i) for i in range(min(count, MAX_GPUS))]
    except Exception as exc:
        return report("unreadable", "nvml", [], exc)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: S110 - shutdown failing changes nothing for the reading
            pass
    if not gpus:
        return report("none", "nvml", [])
    if all(g.get("error") for g in gpus):
        return report("unreadable", "nvml", gpus, gpus[0]["error"])
    return report("ok", "nvml", gpus)


def _nvml_gpu(nv: Any, index: int) -> Reading:
    reading: Reading = {"index": index}
    try:
        handle = nv.nvmlDeviceGetHandleByIndex(index)
    except Exception as exc:
        reading["error"] = "GPU %d: %s" % (index, exc)
        return reading
    util = _try(lambda: nv.nvmlDeviceGetUtilizationRates(handle))
    mem = _try(lambda: nv.nvmlDeviceGetMemoryInfo(handle))
    if util is None and mem is None:
        reading["error"] = "GPU %d: no utilisation or memory reading" % index
    reading["util_pct"] = _round(getattr(util, "gpu", None))
    reading["mem_util_pct"] = _round(getattr(util, "memory", None))
    reading["mem_used_mb"] = _round(_scaled(getattr(mem, "used", None), 2**20))
    reading["mem_total_mb"] = _round(_scaled(getattr(mem, "total", None), 2**20))
    reading["temp_c"] = _round(_try(lambda: nv.nvmlDeviceGetTemperature(handle, 0)))
    reading["power_w"] = _round(_scaled(_try(lambda: nv.nvmlDeviceGetPowerUsage(handle)), 1000))
    limit = _try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle))
    reading["power_limit_w"] = _round(_scaled(limit, 1000))
    bits = _try(lambda: nv.nvmlDeviceGetCurrentClocksThrottleReasons(handle))
    reading["throttle"] = None if bits is None else throttle_names(int(bits))
    # uncorrected ECC errors since the driver loaded (volatile); None where ECC is off
    reading["ecc_uncorrected"] = _try(lambda: int(nv.nvmlDeviceGetTotalEccErrors(handle, 1, 0)))
    return reading


def throttle_names(bits: int) -> List[str]:
    return [name for bit, name in THROTTLE_BITS if bits & bit]


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:
        return None  # NotSupported on this card, or a one-off failure: unknown, not zero


def _scaled(value: Any, divisor: float) -> Optional[float]:
    return None if value is None else float(value) / divisor


def _round(value: Any) -> Optional[float]:
    try:
        return None if value is None else round(float(value), 1)
    except (TypeError, ValueError):
        return None


# -- nvidia-smi ---------------------------------------------------------------------------


def _from_smi() -> Report:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return report("none", None, [])
    argv = [smi, "--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=SMI_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return report("unreadable", "nvidia-smi", [], exc)
    text = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        detail = (text + done.stderr.decode("utf-8", "replace")).strip() or "no output"
        return report("unreadable", "nvidia-smi", [], "exit %d: %s" % (done.returncode, detail))
    gpus = parse_smi(text, SMI_FIELDS)
    if not gpus:
        return report("none" if not text.strip() else "unreadable", "nvidia-smi", [], text[:200])
    return report("ok", "nvidia-smi", gpus)


def parse_smi(text: str, fields: Optional[Sequence[str]] = None) -> List[Reading]:
    """`nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` output as readings.
    With `fields` None the first line is the header (`utilization.gpu [%]`); values may carry
    units (`95 %`, `745 MiB`, `81.25 W`) and `[N/A]`/`N/A` reads as None. Lines that do not
    fit are skipped, never guessed."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if fields is None:
        if not lines:
            return []
        fields = [h.split("[")[0].strip() for h in lines.pop(0).split(",")]
    keys = [_SMI_KEYS.get(f.strip()) for f in fields]
    readings = []
    for position, line in enumerate(lines):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(keys):
            continue
        reading: Reading = {}
        for key, part in [(keys[i], parts[i]) for i in range(len(keys))]:
            if key is not None:
                reading[key] = _num(part)
        if "index" in keys and reading.get("index") is None:
            continue  # an error message, not a GPU's line
        if all(value is None for value in reading.values()):
            continue
        index = reading.get("index")
        reading["index"] = int(index) if index is not None else position
        readings.append(reading)
    return readings


def _num(text: str) -> Optional[float]:
    value = text.split()[0] if text.split() else ""
    try:
        return round(float(value), 1)
    except ValueError:
        return None  # "[N/A]" / "N/A" on some cards
