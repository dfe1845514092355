"""Whether a slowdown is the trainer's own heavier steps, pure: the `slow` rule's last gate.

Timing cannot tell a run whose steps get heavier (a batch-size ramp, longer sequences, a
costlier curriculum stage) from one that is slowed (a throttled GPU, a congested interconnect,
a starved or waiting GPU): both train fast, then slower for good. The GPU can. A GPU kept as
busy and drawing as much power as it did at the run's rate is doing as much work a second:
each step asks more of it, which is the trainer's plan, not a fault. A slowed GPU shows it:
one that waits (data, a neighbour on the host) is less busy; one that throttles draws less
power as its clocks fall, its kernels running longer; a spinning collective reads 100 % busy
at a fraction of the power (NVIDIA/nccl#968).

So a slowdown that would be told (core/throughput.py: held under the slow line and costly
enough) is not when its readings' GPU work held: the least busy GPU at WORK_UTIL_HELD of its
utilisation at the run's rate and the mean power at WORK_POWER_HELD of its draw there (the
medians of at least WORK_READINGS readings of the sag, none in a save's or an eval's silence).
Its rate becomes the run's (core/baseline.py `update_baseline`), so a slowdown after it is
judged from there. Without a power reading (an older supervisor, a GPU whose NVML gives none)
nothing is waived. Nor is a slowdown that makes the run miss its deadline or max_cost (the
deadline gate: the person can act on it).

A GPU that says it is slowed (NVML's throttle reasons: thermal, a hardware slowdown, a power
brake; not the power cap every busy GPU meets) is never heavier steps, and the slow message
names it (`slowed_text`).

Where it loses: a process that is not the trainer computing on the run's GPU (a leftover of an
earlier launch) keeps it as busy and drawing as much while the run slows; that is not told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from statistics import median

from core.memory import Memory, Sample
from core.protocol import GpuReading

WORK_UTIL_HELD = 0.9
WORK_POWER_HELD = 0.85
WORK_READINGS = 2
# supervisor/gpu.py THROTTLE_BITS that mean trouble; sw_power_cap is a busy GPU's normal state
SLOWED_REASONS = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")


def remember_work(memory: Memory, sample: Sample, weight: float) -> Memory:
    """Fold a reading that counted toward the run's rate into the GPU work at that rate
    (`weight`: the reading's share of the new mean; 1.0 starts it afresh)."""
    util, power = _util(sample), sample.gpu_power_w
    if util is None or power is None:
        return memory
    old_util, old_power = memory.work_util_pct, memory.work_power_w
    if old_util is None or old_power is None or weight >= 1.0:
        return replace(memory, work_util_pct=util, work_power_w=power)
    return replace(
        memory,
        work_util_pct=(1 - weight) * old_util + weight * util,
        work_power_w=(1 - weight) * old_power + weight * power,
    )


def as_busy(memory: Memory, readings: Iterable[Sample]) -> bool:
    """The sag's `readings` kept the GPU as busy, drawing as much power, as at the run's rate."""
    base_util, base_power = memory.work_util_pct, memory.work_power_w
    if base_util is None or base_power is None or base_power <= 0:
        return False
    # a reading in a save's or an eval's silence says nothing of training's work
    training = [s for s in readings if not (s.explained_idle or s.busy_silent)]
    if any(s.gpu_slowed for s in training):
        return False
    pairs = [(_util(s), s.gpu_power_w) for s in training]
    read = [(u, p) for u, p in pairs if u is not None and p is not None]
    if len(read) < WORK_READINGS:
        return False
    # the median: one reading that caught a short save or a batch's gap is not the sag's
    util, power = median(u for u, _ in read), median(p for _, p in read)
    return util >= WORK_UTIL_HELD * base_util and power >= WORK_POWER_HELD * base_power


def _util(sample: Sample) -> float | None:
    return sample.gpu_min_pct if sample.gpu_min_pct is not None else sample.gpu_util_pct


def slowed(gpus: Iterable[GpuReading]) -> bool:
    return any(_reasons(g) for g in gpus)


def slowed_text(gpus: Iterable[GpuReading]) -> str | None:
    """`GPU 0 throttled: hw_thermal, sw_thermal`, for each GPU that says it is slowed."""
    said = [f"GPU {g.index} throttled: {', '.join(_reasons(g))}" for g in gpus if _reasons(g)]
    return "; ".join(said) or None


def _reasons(gpu: GpuReading) -> list[str]:
    return [r for r in gpu.throttle or () if r in SLOWED_REASONS]
