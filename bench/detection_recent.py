"""The simulated supervisor's recent GPU readings (state.json's `gpu_recent`, written by
supervisor/gpurecent.py): the heartbeat readings of the last RECENT_S taken while the trainer
printed as often as it does, and their medians.

Every heartbeat (STRIDE_S, the default heartbeat) is read, so a median is of up to 20
readings, as the supervisor's is. Until 2026-12-01 (eighth session) one heartbeat in four was
read, a median of 5: that cost the gate its steadiness on scattered GPUs (2.0 % of
noisy_gpu_heavier_stage's runs falsely told slow, against 0.3 % at 20 readings), a shortcut
against the medians' worth that the simulator no longer takes. One shortcut is left: the
trainer's print gap is known from the start (the supervisor learns it from its first prints),
so a reading in the first `fresh_s` of a silence counts as a print's, like the supervisor's.
Kept per attempt, as the supervisor keeps them: until 2026-12-02 (ninth session) a retry's
window still held the last attempt's readings for up to RECENT_S.

A silence's first readings (within `fresh_s` of the last print) are kept until the silence
outlasts `fresh_s`, then dropped, as the supervisor drops them. Each heartbeat's reading is
drawn once, from its own seed: checks whose windows overlap see the same readings, as they
would.
"""

from __future__ import annotations

import bisect
import math
import random
from statistics import median
from typing import Any

from bench.detection_model import (
    HEARTBEAT_S,
    OUTPUT_MODES,
    Phase,
    SimRun,
    gpu_and_speed,
    gpu_doc,
)
from supervisor.gpurecent import FRESH_MIN_S, RECENT_S

STRIDE_S = HEARTBEAT_S  # every heartbeat, as the supervisor reads them


# utilisation %, power (a share of the limit), kept until, the attempt that trained
Reading = tuple[float, float, float, int]


def recent_doc(run: SimRun, t: float, cache: dict[float, Reading | None]) -> Any:
    """`gpu_recent` at `t` (None: no reading in the window counts); `cache` keeps each
    heartbeat's reading (utilisation %, power as a share of the limit, and until when it is
    kept: a silence's first readings go once it outlasts the print gap) or None."""
    first = (t - RECENT_S) // STRIDE_S * STRIDE_S + STRIDE_S
    beats = [first + i * STRIDE_S for i in range(int((t - first) // STRIDE_S) + 1)]
    attempt = run.phase_at(t).attempt  # a new trainer's readings start afresh
    read = [
        (b, r[:2])
        for b in beats
        if (r := _reading(run, b, cache)) is not None and t <= r[2] and r[3] == attempt
    ]
    if not read:
        return None
    return {
        "readings": len(read),
        "span_s": read[-1][0] - read[0][0],
        "gpus": [gpu_doc(median(u for _, (u, _) in read), median(w for _, (_, w) in read))],
    }


def _reading(run: SimRun, beat: float, cache: dict[float, Reading | None]) -> Reading | None:
    if beat not in cache:
        cache[beat] = _read(run, beat)
    return cache[beat]


def _read(run: SimRun, beat: float) -> Reading | None:
    p = run.phase_at(beat)
    if p.status != "running" or beat < 0:
        return None
    fresh = max(FRESH_MIN_S, 2 * run.output_every_s)
    printed = run.last_print(p.start, beat) if p.mode in OUTPUT_MODES else p.out_base
    if printed is None or beat - printed > fresh:
        return None  # an eval's, a save's, a load's silence: not the trainer's work
    rng = random.Random(run.seed * 1_000_003 + int(beat))
    util, _ = gpu_and_speed(p.mode, rng)
    util = run.training_util(p, beat, util, rng)
    if util is None:
        return None
    until = math.inf if _prints_by(run, p, printed + fresh) else printed + fresh
    return util, run.power(p, beat, util, rng), until, p.attempt


def _prints_by(run: SimRun, p: Phase, t: float) -> bool:
    """Whether the trainer, silent or training in `p`, prints again by `t` (a silent phase
    ends in training's first print, which the simulator places at that phase's start)."""
    if p.mode in OUTPUT_MODES:
        return True  # its prints are at most twice its print gap apart
    for q in run.phases[bisect.bisect_right([q.start for q in run.phases], p.start) :]:
        if q.start > t or q.status != "running":
            return False
        if q.mode in OUTPUT_MODES:
            return True
    return False
