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
enough) is not when the GPU's work held through it: the least busy GPU at WORK_UTIL_HELD of its
utilisation at the run's rate, and the GPU drawing least at WORK_POWER_HELD of its draw there
above idle (IDLE_SHARE of its power limit: a GPU that spins or waits half the time still draws
its idle floor), each the median over the attempt's kept readings under the recovered line (at
least WORK_READINGS; none in a save's or an eval's silence, nor at a check silent past the
trainer's print gap: maybe such a silence's first seconds). The least busy and the least
drawing, not the mean: one GPU of eight that throttles or waits holds the other seven back.
Its rate becomes the run's, and its work the work at that rate (core/baseline.py), so a
slowdown after it is judged from there. Without a power reading (an older supervisor, a GPU
whose NVML gives none) nothing is waived. Nor is a slowdown that makes the run miss its
deadline or max_cost (the deadline gate: the person can act on it).

Each reading is the supervisor's median over its heartbeats of the last minutes spent
training (`gpu_recent`, supervisor/gpurecent.py) where it sends one: one instant's reading
lands between kernels or on a batch's gap, and with readings scattered to 70-110 % a GPU as
busy fell under the line on 6-14 % of runs. An older supervisor's check reads one instant.

A GPU that says it is slowed (NVML's throttle reasons: thermal, a hardware slowdown, a power
brake; not the power cap every busy GPU meets) is never heavier steps, and the slow message
names it (`slowed_text`).

Where it loses: another process computing on the run's GPU (a leftover of an earlier launch,
a co-tenant on a time-sliced GPU, the person's own script) keeps it as busy and drawing as
much while the run slows; so does a slowdown the trainer brings on itself (attention falling
back from its fused kernel to the plain one, mixed precision off). Neither is told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from statistics import median

from core.memory import Memory, Sample, in_silence, lowest_util
from core.protocol import GpuReading, SupervisorState

WORK_UTIL_HELD = 0.9
WORK_POWER_HELD = 0.85
WORK_READINGS = 2
RECENT_READINGS = 4  # the supervisor's recent readings that stand for a check's own
IDLE_SHARE = 0.1  # an idle GPU draws about this share of its limit (an H100: 60-100 W of 700)
# supervisor/gpu.py THROTTLE_BITS that mean trouble; sw_power_cap is a busy GPU's normal state
SLOWED_REASONS = ("hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake")


def work_w(used: Iterable[GpuReading]) -> float | None:
    """The least any of the run's GPUs draws above its idle floor (the whole draw when its
    limit is unknown); None when one of them gives no power reading."""
    draws = [_above_idle(g) for g in used]
    if not draws or any(d is None for d in draws):
        return None
    return min(d for d in draws if d is not None)


def _above_idle(gpu: GpuReading) -> float | None:
    if gpu.power_w is None:
        return None
    floor = IDLE_SHARE * gpu.power_limit_w if gpu.power_limit_w else 0.0
    return max(0.0, gpu.power_w - floor)


def recent_work(
    state: SupervisorState, used: Iterable[GpuReading]
) -> tuple[float | None, float | None]:
    """The least busy GPU's median utilisation and the least median draw above idle over the
    supervisor's recent training readings (`gpu_recent`), of the GPUs the run uses (`used`);
    (None, None) from an older supervisor, or with fewer than RECENT_READINGS of them."""
    recent = state.gpu_recent
    if recent is None or recent.readings < RECENT_READINGS:
        return None, None
    ours = {g.index for g in used}
    read = [g for g in recent.gpus if g.index in ours and g.util_pct is not None]
    if not read:
        return None, None
    return min(g.util_pct or 0.0 for g in read), work_w(read)


def work_of(sample: Sample) -> tuple[float | None, float | None]:
    """A reading's GPU work (utilisation, draw above idle): the supervisor's recent medians
    where it has them (`lowest_util` prefers them too), else this check's own."""
    recent = sample.recent_work_w
    return lowest_util(sample), sample.gpu_work_w if recent is None else recent


def remember_work(memory: Memory, sample: Sample, weight: float) -> Memory:
    """Fold a reading that counted toward the run's rate into the GPU work at that rate
    (`weight`: the reading's share of the new mean; 1.0 starts it afresh). A reading that
    says nothing of training's work (`_training`), or of a GPU that said it was slowed,
    changes nothing."""
    util, work = work_of(sample)
    if util is None or work is None or not _training(sample) or sample.gpu_slowed:
        return memory
    old_util, old_work = memory.work_util_pct, memory.work_w
    if old_util is None or old_work is None or weight >= 1.0:
        return replace(memory, work_util_pct=util, work_w=work)
    return replace(
        memory,
        work_util_pct=(1 - weight) * old_util + weight * util,
        work_w=(1 - weight) * old_work + weight * work,
    )


def sag_work(readings: Iterable[Sample]) -> tuple[float, float] | None:
    """The sag's GPU work: the medians of its training readings' utilisation and draw (one
    reading that caught a short save or a batch's gap is not the sag's); None: fewer than
    WORK_READINGS, or a GPU said it was slowed."""
    training = [s for s in readings if _training(s)]
    if any(s.gpu_slowed for s in training):
        return None
    pairs = [work_of(s) for s in training]
    read = [(u, w) for u, w in pairs if u is not None and w is not None]
    if len(read) < WORK_READINGS:
        return None
    return median(u for u, _ in read), median(w for _, w in read)


def _training(sample: Sample) -> bool:
    """The reading is of the GPU while training: not in a silence, nor maybe a silence's first
    seconds (`Sample.past_print_gap`)."""
    return not (in_silence(sample) or sample.past_print_gap)


def as_busy(memory: Memory, readings: Iterable[Sample]) -> bool:
    """The sag's `readings` kept the GPU as busy, drawing as much power, as at the run's rate."""
    base_util, base_work = memory.work_util_pct, memory.work_w
    work = sag_work(readings)
    if base_util is None or base_work is None or base_work <= 0 or work is None:
        return False
    util, draw = work
    return util >= WORK_UTIL_HELD * base_util and draw >= WORK_POWER_HELD * base_work


def slowed(gpus: Iterable[GpuReading]) -> bool:
    return any(_reasons(g) for g in gpus)


def slowed_text(gpus: Iterable[GpuReading]) -> str | None:
    """`GPU 0 throttled: hw_thermal, sw_thermal`, for each GPU that says it is slowed."""
    said = [f"GPU {g.index} throttled: {', '.join(_reasons(g))}" for g in gpus if _reasons(g)]
    return "; ".join(said) or None


def _reasons(gpu: GpuReading) -> list[str]:
    return [r for r in gpu.throttle or () if r in SLOWED_REASONS]
