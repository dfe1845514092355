"""What a silent trainer is doing: stalled (kill the attempt), hung with a busy GPU (alert a
human), or busy without printing (loading, compiling, saving a checkpoint: leave it alone).
Pure: data and the probe's clock only.

The evidence, all on the instance's clock:
- silence: no new output since `silent_since` (core.findings);
- the GPUs, per GPU: all idle, or at least one busy (a spinning NCCL kernel reads as busy);
- the trainer's process tree (supervisor/proctree.py): when its CPU time or its I/O last moved.

Silent for the window and ...
- GPUs idle or unreadable, no CPU and no I/O progress for `stall_after_s`: stall, one kill;
- GPUs idle, the tree still computing or reading/writing: nothing (loading, compiling, saving);
- a GPU busy, no I/O for `hang_after_s` (CPU ignored: a deadlock spins): hang, an alert only;
  where NVML reads power, only when every busy GPU draws little of its limit (a spin) - a
  GPU drawing the power of real work is a long eval, whatever the I/O;
- the tree's activity unknown (an older supervisor, /proc unreadable): today's rules (the
  stale-output alert), but a kill only after `stall_unknown_after_s`.

A kill on a healthy run is the worst thing sleepwatch can do, so an unknown reading never
shortens the way to a kill: without activity data the window is three times longer.

Called by core.hard_rules (the silent-trainer verdict, and whether the tree is busy for the
check's sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.findings import Thresholds, age_s
from core.protocol import GpuReading, ProbeSnapshot, SupervisorState
from core.vocab import Condition, RunStatus

IN_USE_MB = 1024.0  # a GPU holding less memory than this is not the trainer's (an idle spare)
MIN_RECHECK_S = 20.0
SPIN_POWER_SHARE = 0.35  # a busy GPU under this share of its power limit is spinning, not working
QUIET_S = 120.0  # silent this long (or a fifth of stall_after) before silence is judged


@dataclass(frozen=True, slots=True)
class Silence:
    kind: Condition | None  # STALL (kill), HANG (alert), None (nothing to say)
    reason: str = ""
    recheck_s: float | None = None  # when the verdict could next change, if it could


def used_gpus(probe: ProbeSnapshot) -> tuple[GpuReading, ...]:
    """The GPUs the run uses: those holding memory (or of unknown memory), with a reading."""
    gpus = probe.gpus or (probe.state.gpus if probe.state else ())
    read = [g for g in gpus if g.util_pct is not None]
    used = [g for g in read if g.mem_used_mb is None or g.mem_used_mb >= IN_USE_MB]
    return tuple(used or read)


def judge_silence(
    state: SupervisorState,
    probe: ProbeSnapshot,
    since: datetime | None,
    t: Thresholds,
) -> Silence:
    if state.status is not RunStatus.RUNNING:
        return Silence(None)
    silent = age_s(probe.at, since)
    if silent is None or silent < min(QUIET_S, t.stall_after_s / 5):
        return Silence(None)  # printing: nothing to judge, nothing to re-check early
    utils = [g.util_pct for g in used_gpus(probe) if g.util_pct is not None]
    if utils and max(utils) >= t.gpu_low_pct:
        return _busy_gpu(state, probe, silent, max(utils), t)
    gpu = f"GPU {max(utils):.0f}%" if utils else "GPU unreadable"
    activity_at = _last_activity_at(state)
    if activity_at is None:
        if silent >= t.stall_unknown_after_s:
            return Silence(
                Condition.STALL,
                f"trainer silent for {silent:.0f}s with {gpu}; its CPU and I/O cannot be read",
            )
        return Silence(None, recheck_s=_recheck(t.stall_unknown_after_s - silent))
    idle = age_s(probe.at, activity_at) or 0.0
    if silent >= t.stall_after_s and idle >= t.stall_after_s:
        return Silence(
            Condition.STALL,
            f"trainer silent for {silent:.0f}s with {gpu} and no CPU or I/O progress "
            f"for {idle:.0f}s",
        )
    return Silence(None, recheck_s=_recheck(max(t.stall_after_s - silent, t.stall_after_s - idle)))


def _busy_gpu(
    state: SupervisorState, probe: ProbeSnapshot, silent: float, top: float, t: Thresholds
) -> Silence:
    computing = _computing(used_gpus(probe), t)
    if computing:
        return Silence(None)  # drawing the power of real work: a long eval, not a spin
    activity = state.activity
    io_known = activity is not None and activity.io_bytes is not None
    if not io_known and computing is None:
        return Silence(None)  # nothing but silence to go on: today's stale-output alert
    quiet_io = silent
    if activity is not None and activity.last_io_at is not None and io_known:
        quiet_io = min(silent, age_s(probe.at, activity.last_io_at) or 0.0)
    if silent >= t.hang_after_s and quiet_io >= t.hang_after_s:
        power = " at low power" if computing is False else ""
        io = f"no I/O for {quiet_io:.0f}s" if io_known else "its I/O unknown"
        return Silence(
            Condition.HANG,
            f"trainer silent for {silent:.0f}s, no new step, a GPU busy at {top:.0f}%{power} "
            f"and {io}: it may be hung (a deadlock spins the GPU); not killed",
        )
    return Silence(None, recheck_s=_recheck(t.hang_after_s - min(silent, quiet_io)))


def _computing(gpus: tuple[GpuReading, ...], t: Thresholds) -> bool | None:
    """Whether the busy GPUs draw the power of real work; None where power is not read.
    A collective deadlock reads as 100 % utilisation at a fraction of the power limit
    (github.com/NVIDIA/nccl/issues/968: ~70 W; horovod/horovod#3611: 47 W of 250 W;
    nebius/soperator#796 checks exactly that), while an eval draws most of it."""
    busy = [g for g in gpus if g.util_pct is not None and g.util_pct >= t.gpu_low_pct]
    shares = [
        g.power_w / g.power_limit_w
        for g in busy
        if g.power_w is not None and g.power_limit_w is not None and g.power_limit_w > 0
    ]
    if not busy or len(shares) < len(busy):
        return None
    return max(shares) >= SPIN_POWER_SHARE


def _last_activity_at(state: SupervisorState) -> datetime | None:
    activity = state.activity
    if activity is None or (activity.cpu_s is None and activity.io_bytes is None):
        return None
    moments = [m for m in (state.last_activity_at, activity.last_cpu_at, activity.last_io_at) if m]
    return max(moments) if moments else None


def _recheck(seconds: float) -> float:
    return max(MIN_RECHECK_S, seconds)


def tree_busy(state: SupervisorState, probe: ProbeSnapshot, t: Thresholds) -> bool | None:
    """Whether the trainer's tree made progress within the stall window (None: unknown)."""
    activity_at = _last_activity_at(state)
    if activity_at is None:
        return None
    return (age_s(probe.at, activity_at) or 0.0) < t.stall_after_s
