"""A fake NVML for supervisor tests: the same names and call shapes as nvidia-ml-py's pynvml,
answering from the JSON in $FAKE_NVML. Put this directory first on PYTHONPATH of a real
supervisor subprocess.

$FAKE_NVML: {"init_error": CODE} (nvmlInit raises NVMLError(CODE)), or
{"gpus": [{"util": 97, "mem_util": 40, "used_mb": 70000, "total_mb": 81920, "temp": 61,
"power_mw": 612000, "limit_mw": 700000, "throttle": 4, "ecc": 0, "lost": false}, ...]};
a GPU with "lost": true raises NVML_ERROR_GPU_IS_LOST (15) from every call but the handle;
a field left out raises NVML_ERROR_NOT_SUPPORTED (3).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def _spec():
    return json.loads(os.environ.get("FAKE_NVML", '{"gpus": []}'))


def nvmlInit():
    code = _spec().get("init_error")
    if code is not None:
        raise NVMLError(code)


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return len(_spec()["gpus"])


def nvmlDeviceGetHandleByIndex(index):
    return _spec()["gpus"][index]


def _field(handle, name):
    if handle.get("lost"):
        raise NVMLError(15)
    if name not in handle:
        raise NVMLError(3)
    return handle[name]


def nvmlDeviceGetUtilizationRates(handle):
    return SimpleNamespace(gpu=_field(handle, "util"), memory=_field(handle, "mem_util"))


def nvmlDeviceGetMemoryInfo(handle):
    used, total = _field(handle, "used_mb"), _field(handle, "total_mb")
    return SimpleNamespace(used=used * 2**20, total=total * 2**20, free=(total - used) * 2**20)


def nvmlDeviceGetTemperature(handle, sensor):
    assert sensor == 0  # NVML_TEMPERATURE_GPU
    return _field(handle, "temp")


def nvmlDeviceGetPowerUsage(handle):
    return _field(handle, "power_mw")


def nvmlDeviceGetEnforcedPowerLimit(handle):
    return _field(handle, "limit_mw")


def nvmlDeviceGetCurrentClocksThrottleReasons(handle):
    return _field(handle, "throttle")


def nvmlDeviceGetTotalEccErrors(handle, error_type, counter_type):
    assert (error_type, counter_type) == (1, 0)  # uncorrected, volatile
    return _field(handle, "ecc")
