"""Held-out scenario families for `bench.detection`: runs the rules were not tuned on, each
reported on its own. Every family is a seeded fleet of 24 h runs built from the same simulated
supervisor (bench/detection_model.py) with one thing changed.

Goals on every family (sleepwatch = `adaptive_wait`): 0 false kills (a kill-attempt on a trainer
that was not hung with its GPUs idle), false-alert runs <= 1 %, and where the family has
something to catch, detected p95 < 15 min.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from bench.detection_model import DAY_S, EVAL_EVERY_S, FAR_S, SimRun

MIN = 60.0


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    what: str
    build: Callable[[SimRun, random.Random], None]
    catch: bool = False  # something to detect (a hang, a lost instance, a decay)
    # what there is to catch is a slowdown: judged on what it had cost the run when told
    slowdown: bool = False
    # the rules were designed or tuned looking at this family's results: no longer held out
    tuned: bool = False


def _base(index: int, seed: int, family: str, kind: str) -> tuple[SimRun, random.Random]:
    rng = random.Random(f"{family}:{seed}:{index}")
    run = SimRun(index, kind, rng.randrange(1 << 30), rate=rng.uniform(0.5, 5.0), rng=rng)
    run.eval_every_s = rng.uniform(*EVAL_EVERY_S)
    return run, rng


def _healthy_day(run: SimRun) -> None:
    run.live(0, DAY_S, 1)
    run.finish(DAY_S, "done", "completed", 1)
    run.event_s = DAY_S


def slow_startup(run: SimRun, rng: random.Random) -> None:
    # loading a large model (reads), then torch.compile warm-up (CPU): 8-20 min, GPU idle
    run.startup_s = (rng.uniform(3, 8) * MIN, rng.uniform(5, 12) * MIN)
    _healthy_day(run)


def long_checkpoints(run: SimRun, rng: random.Random) -> None:
    run.ckpt_s = (5 * MIN, 15 * MIN)  # GPU idle, I/O busy
    _healthy_day(run)


def long_evals(mode: str) -> Callable[[SimRun, random.Random], None]:
    def build(run: SimRun, rng: random.Random) -> None:
        run.eval_s, run.eval_mode = (15 * MIN, 40 * MIN), mode
        run.eval_every_s = max(run.eval_every_s, 3600.0)
        _healthy_day(run)

    return build


def busy_hang(run: SimRun, rng: random.Random) -> None:
    # an NCCL deadlock: the GPU spins at 100 %, a CPU thread spins, no bytes move, no output
    when = rng.uniform(1800, 22 * 3600)
    run.live(0, when, 1)
    run.add(when, FAR_S, "running", 1, "hung_busy")
    run.event_s = when


def idle_hang(run: SimRun, rng: random.Random) -> None:
    when = rng.uniform(1800, 22 * 3600)
    run.live(0, when, 1)
    run.add(when, FAR_S, "running", 1, "hung")
    run.event_s = when


def preempted(run: SimRun, rng: random.Random) -> None:
    # the instance disappears: every probe fails from then on, the wait channel too
    when = rng.uniform(1800, 22 * 3600)
    _healthy_day(run)
    run.dark = [(when, FAR_S)]
    run.event_s = when


def unreachable_periods(run: SimRun, rng: random.Random) -> None:
    # 3-6 network blips of 1-10 min on a healthy run
    _healthy_day(run)
    # apart from each other (two blips a minute apart are one longer outage, not this family)
    starts: list[float] = []
    count = rng.randint(3, 6)
    while len(starts) < count:
        start = rng.uniform(1800, DAY_S - 3600)
        if all(abs(start - other) > 30 * MIN for other in starts):
            starts.append(start)
    run.dark = [(s, s + rng.uniform(1, 10) * MIN) for s in sorted(starts)]


def throughput_decay(run: SimRun, rng: random.Random) -> None:
    # throughput and GPU fall slowly, over 4-12 h, to 30 %; the trainer keeps printing
    start, ramp = rng.uniform(2 * 3600, 8 * 3600), rng.uniform(4 * 3600, 12 * 3600)
    _decay(run, start, ramp)


def _decay(run: SimRun, start: float, ramp: float) -> None:
    """A true decay to 30 % of the rate from `start` over `ramp` s; the run ends done."""
    run.decay = (start, ramp)
    run.live(0, start, 1)
    run.live(start, DAY_S, 1, "decay", boot=False)
    run.finish(DAY_S, "done", "completed", 1)
    run.event_s = start + ramp * (0.5 / 0.7)  # under half the run's own rate from here
    run.onset_s = start


def throughput_dips(run: SimRun, rng: random.Random) -> None:
    # 1-4 transient slowdowns a day while the trainer keeps printing (a background checkpoint
    # upload, a noisy neighbour on a shared host): 20-70 % of the rate for 2-20 min, then back
    _healthy_day(run)
    for _ in range(rng.randint(1, 4)):
        start = rng.uniform(1800, DAY_S - 3600)
        run.dips.append((start, start + rng.uniform(2, 20) * MIN, rng.uniform(0.2, 0.7)))


def noisy_throughput(run: SimRun, rng: random.Random) -> None:
    # variable-length batches, a shared dataloader host: each reading +-20 % around the rate
    run.noise = 0.2
    _healthy_day(run)


def periodic_slow_phases(run: SimRun, rng: random.Random) -> None:
    # every 1-2 h a 15-40 min phase at 30-60 % of the rate, the trainer printing all along
    # (generation interleaved with training, a costlier curriculum stage): the run's own pattern
    _healthy_day(run)
    _periodic_phases(run, rng)


def _periodic_phases(run: SimRun, rng: random.Random) -> None:
    every, t = rng.uniform(3600, 7200), rng.uniform(1800, 3600)
    while t < DAY_S - 3600:
        run.dips.append((t, t + rng.uniform(15, 40) * MIN, rng.uniform(0.3, 0.6)))
        t += every


def irregular_slow_phases(run: SimRun, rng: random.Random) -> None:
    # a neighbour's jobs on a shared node: slow phases at random moments (gaps drawn from an
    # exponential, mean 1-3 h a run), of random length around the run's own typical one (10-30
    # min, each phase x a log-normal, sigma 0.4, at most 60 min: now and then one longer than
    # any before it), at 30-65 % of the rate; the trainer prints all along (must not alert)
    _healthy_day(run)
    _irregular_phases(run, rng)


def _irregular_phases(run: SimRun, rng: random.Random) -> None:
    typical, gap = rng.uniform(10, 30) * MIN, rng.uniform(1, 3) * 3600
    t = rng.uniform(1800, 3 * 3600)
    while t < DAY_S - 3600:
        length = min(60 * MIN, typical * rng.lognormvariate(0.0, 0.4))
        run.dips.append((t, t + length, rng.uniform(0.3, 0.65)))
        t += length + max(20 * MIN, rng.expovariate(1 / gap))


def periodic_then_decay(run: SimRun, rng: random.Random) -> None:
    # the periodic phases above all day, and from 6-14 h a true decay to 30 % over 2-8 h
    # underneath them (the phases go on): caught although the run taught the rule to wait
    start, ramp = rng.uniform(6 * 3600, 14 * 3600), rng.uniform(2 * 3600, 8 * 3600)
    _periodic_phases(run, rng)
    _decay(run, start, ramp)


def fast_decay(run: SimRun, rng: random.Random) -> None:
    # a leak that bites quickly: the rate falls to 30 % over 20-90 min, from 2-20 h in
    _decay(run, rng.uniform(2 * 3600, 20 * 3600), rng.uniform(20, 90) * MIN)


def noisy_slow_decay(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-20 %, and from 2-8 h a decay to 30 % over 6-16 h
    run.noise = 0.2
    _decay(run, rng.uniform(2 * 3600, 8 * 3600), rng.uniform(6 * 3600, 16 * 3600))


def _step_down(run: SimRun, start: float, share: float) -> None:
    """From `start` the run trains at `share` of its rate for good; it ends done."""
    _healthy_day(run)
    run.step_down = (start, share)
    run.event_s = run.onset_s = start


def settled_lower(run: SimRun, rng: random.Random) -> None:
    # a degraded host or a costlier stage that never ends: 50-68 % of the rate from 2-20 h on
    _step_down(run, rng.uniform(2 * 3600, 20 * 3600), rng.uniform(0.5, 0.68))


def phases_then_collapse(run: SimRun, rng: random.Random) -> None:
    # a neighbour's slow phases (as irregular_slow_phases), then at 6-18 h a collapse to
    # 20-45 % of the rate for good, the phases going on over it
    start = rng.uniform(6 * 3600, 18 * 3600)
    _step_down(run, start, rng.uniform(0.2, 0.45))
    _irregular_phases(run, rng)


def deep_short_phases(run: SimRun, rng: random.Random) -> None:
    # every 30-120 min a 5-25 min phase at 5-25 % of the rate (a shard fetched from a slow
    # bucket, a host-side preprocessing burst); the trainer prints all along (must not alert)
    _healthy_day(run)
    t = rng.uniform(1800, 3600)
    while t < DAY_S - 3600:
        length = rng.uniform(5, 25) * MIN
        run.dips.append((t, t + length, rng.uniform(0.05, 0.25)))
        t += length + rng.uniform(30, 120) * MIN


def input_bound(run: SimRun, rng: random.Random) -> None:
    # the dataloader (or a CPU fallback) starves the GPU from the start: 3-9 % busy at the
    # run's own, steady rate; a GPU paid for and unused (told as low_gpu)
    run.gpu_scale = rng.uniform(0.03, 0.09)
    _healthy_day(run)
    run.event_s = sum(run.startup_s)  # training (at the starved GPU) begins


def gpu_falls_idle(run: SimRun, rng: random.Random) -> None:
    # at 2-20 h the GPU falls idle and the rate to 3-10 % for good (training fell back to the
    # CPU): a slowdown, and an idle GPU
    _step_down(run, rng.uniform(2 * 3600, 20 * 3600), rng.uniform(0.03, 0.10))


def irregular_phases_then_decay(run: SimRun, rng: random.Random) -> None:
    # a neighbour's slow phases, and from 6-16 h a decay to 30 % over 1-4 h under them
    start, ramp = rng.uniform(6 * 3600, 16 * 3600), rng.uniform(3600, 4 * 3600)
    _irregular_phases(run, rng)
    _decay(run, start, ramp)


def noisy_step_down(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-20 %, and at 2-20 h the rate steps down to 50-68 % for good
    run.noise = 0.2
    _step_down(run, rng.uniform(2 * 3600, 20 * 3600), rng.uniform(0.5, 0.68))


def noisy_slow_phases(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-20 %, and a neighbour's slow phases (must not alert)
    run.noise = 0.2
    irregular_slow_phases(run, rng)


def rare_logger(run: SimRun, rng: random.Random) -> None:
    # a trainer that prints (and so moves its step) only every 2-8 min (must not alert)
    run.output_every_s = rng.uniform(2, 8) * MIN
    _healthy_day(run)


def input_bound_rare_logger(run: SimRun, rng: random.Random) -> None:
    # input_bound, in a trainer that prints only every 2-8 min
    run.output_every_s = rng.uniform(2, 8) * MIN
    input_bound(run, rng)


def input_bound_long_evals(run: SimRun, rng: random.Random) -> None:
    # input_bound, with evals of 15-40 min every 1-2 h that keep the GPU busy
    run.eval_s, run.eval_every_s = (15 * MIN, 40 * MIN), rng.uniform(3600, 7200)
    input_bound(run, rng)


# -- noise shapes the slow rule was not tuned on (written 2026-12-01, before any rule change) ----


def _uniform(share: float) -> Callable[[float, random.Random], float]:
    return lambda _t, rng: rng.uniform(1 - share, 1 + share)


def gaussian_step_down(run: SimRun, rng: random.Random) -> None:
    # readings scattered normally (sigma 10-15 %, a long tail both ways), and at 2-20 h the rate
    # steps down to 50-65 % for good
    sigma = rng.uniform(0.10, 0.15)
    run.scatter = lambda _t, r: max(0.3, r.gauss(1.0, sigma))
    _step_down(run, rng.uniform(2 * 3600, 20 * 3600), rng.uniform(0.5, 0.65))


def noisy_collapse(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-25 %, and at 2-20 h a collapse to 25-45 % of the rate for good
    run.scatter = _uniform(0.25)
    _step_down(run, rng.uniform(2 * 3600, 20 * 3600), rng.uniform(0.25, 0.45))


def noisy_periodic_phases(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-25 %, and the periodic slow phases (must not alert)
    run.scatter = _uniform(0.25)
    periodic_slow_phases(run, rng)


def noise_grows(run: SimRun, rng: random.Random) -> None:
    # a shared host that gets busy: readings scattered +-5 %, from 4-12 h on +-30 % (must not
    # alert)
    at = rng.uniform(4 * 3600, 12 * 3600)
    run.scatter = lambda t, r: r.uniform(0.95, 1.05) if t < at else r.uniform(0.7, 1.3)
    _healthy_day(run)


def slow_batches(run: SimRun, rng: random.Random) -> None:
    # now and then a reading's window holds a long batch or a GC pause: 5-15 % of readings at
    # 40-70 % of the rate, the rest as usual (must not alert)
    odds = rng.uniform(0.05, 0.15)
    run.scatter = lambda _t, r: r.uniform(0.4, 0.7) if r.random() < odds else 1.0
    _healthy_day(run)


def noisy_dips(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-20 %, and 1-4 transient slowdowns (must not alert)
    run.scatter = _uniform(0.2)
    throughput_dips(run, rng)


def noisy_fast_decay(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-20 %, and from 2-20 h the rate falls to 30 % over 20-90 min
    run.scatter = _uniform(0.2)
    fast_decay(run, rng)


# -- more noise shapes, written 2026-12-01 (second session) before any rule change: the rules
# were never tuned on them ------------------------------------------------------------------


def noisy_long_phases(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-25 %, and a neighbour's slow phases of 20-45 min at 35-60 % of the
    # rate every 1-3 h (must not alert)
    run.scatter = _uniform(0.25)
    _healthy_day(run)
    t = rng.uniform(1800, 3 * 3600)
    while t < DAY_S - 3600:
        length = rng.uniform(20, 45) * MIN
        run.dips.append((t, t + length, rng.uniform(0.35, 0.6)))
        t += length + rng.uniform(1, 3) * 3600


def lognormal_decay(run: SimRun, rng: random.Random) -> None:
    # readings x a log-normal (sigma 0.15: a long tail of fast windows), and from 2-10 h a
    # decay to 30 % over 3-10 h
    run.scatter = lambda _t, r: r.lognormvariate(0.0, 0.15)
    _decay(run, rng.uniform(2 * 3600, 10 * 3600), rng.uniform(3 * 3600, 10 * 3600))


def bursty_noise(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-5 %, but +-35 % during 1-2 h bursts every 3-6 h (a neighbour's
    # jobs on the host's storage) (must not alert)
    bursts: list[tuple[float, float]] = []
    t = rng.uniform(3600, 4 * 3600)
    while t < DAY_S:
        bursts.append((t, t + rng.uniform(1, 2) * 3600))
        t += rng.uniform(3, 6) * 3600

    def scatter(at_s: float, r: random.Random) -> float:
        share = 0.35 if any(a <= at_s < b for a, b in bursts) else 0.05
        return r.uniform(1 - share, 1 + share)

    run.scatter = scatter
    _healthy_day(run)


def noisy_step_with_dips(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-15 %, transient dips, and at 2-20 h a step down to 45-60 % for good
    run.scatter = _uniform(0.15)
    _step_down(run, rng.uniform(2 * 3600, 20 * 3600), rng.uniform(0.45, 0.6))
    for _ in range(rng.randint(1, 4)):
        start = rng.uniform(1800, DAY_S - 3600)
        run.dips.append((start, start + rng.uniform(2, 20) * MIN, rng.uniform(0.2, 0.7)))


# -- shapes written 2026-12-01 (third session) before the slow rule's sag-end, first-readings and
# hold changes were judged on them: held out from that change ----------------------------------


def _first_minutes(run: SimRun, span_s: float, share: float, scatter: tuple[float, float]) -> None:
    """A healthy day whose first `span_s` of training go at `share` of the rate, each reading
    also x uniform(*scatter)."""
    _healthy_day(run)
    begins = sum(run.startup_s)
    run.scatter = lambda t, r: r.uniform(*scatter) * (share if t < begins + span_s else 1.0)


def startup_burst(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-15 %, and the first 10-30 min of training 30-60 % faster (short
    # sequences first, a warm page cache) before the run settles at its rate (must not alert)
    burst, fast = rng.uniform(10, 30) * MIN, rng.uniform(1.3, 1.6)
    _first_minutes(run, burst, fast, (0.85, 1.15))


def diurnal_drift(run: SimRun, rng: random.Random) -> None:
    # the rate drifts +-10-15 % with a period of 4-8 h (a shared host's load, thermals), the
    # readings scattered +-15 % on top (must not alert)
    swing, period, phase = rng.uniform(0.10, 0.15), rng.uniform(4, 8) * 3600, rng.random()
    _healthy_day(run)
    run.scatter = lambda t, r: (
        (1 + swing * math.sin(2 * math.pi * (t / period + phase))) * r.uniform(0.85, 1.15)
    )


def two_step_down(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-15 %: at 2-10 h the rate steps to 78-88 %, 2-6 h later to 50-60 %,
    # for good
    run.scatter = _uniform(0.15)
    first = rng.uniform(2 * 3600, 10 * 3600)
    _step_down(run, first, rng.uniform(0.78, 0.88))
    run.later_steps.append((first + rng.uniform(2, 6) * 3600, rng.uniform(0.5, 0.6)))


def collapse_partial_recovery(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-10 %: at 2-16 h a collapse to 20-35 % for 1-2 h, then back only to
    # 55-65 % for good
    run.scatter = _uniform(0.10)
    start = rng.uniform(2 * 3600, 16 * 3600)
    _step_down(run, start, rng.uniform(0.2, 0.35))
    run.later_steps.append((start + rng.uniform(1, 2) * 3600, rng.uniform(0.55, 0.65)))


def heavy_tailed_phases(run: SimRun, rng: random.Random) -> None:
    # readings scattered normally (sigma 8 %), 5 % of them x 0.4-0.6 or x 1.4-1.8 (a window
    # with a long stall or a burst of cached batches), and a neighbour's slow phases (must not
    # alert)
    def scatter(_t: float, r: random.Random) -> float:
        odd = r.random()
        if odd < 0.025:
            return r.uniform(0.4, 0.6)
        if odd < 0.05:
            return r.uniform(1.4, 1.8)
        return max(0.5, r.gauss(1.0, 0.08))

    run.scatter = scatter
    irregular_slow_phases(run, rng)


# -- GPU readings the low-GPU rule was not tuned on (written 2026-12-01, fourth session, before
# any change to that rule was judged on them) -------------------------------------------------


def bursty_input_bound(run: SimRun, rng: random.Random) -> None:
    # input_bound, but the read lands on a batch the GPU is computing now and then: 15-25 % of
    # training readings at 25-60 %, the rest at the starved 3-9 %
    odds = rng.uniform(0.15, 0.25)
    run.gpu_reading = lambda _t, util, r: r.uniform(25, 60) if r.random() < odds else util
    input_bound(run, rng)


def input_bound_retry(run: SimRun, rng: random.Random) -> None:
    # healthy for 1-4 h, then a crash the supervisor fixes; the retry's dataloader has lost
    # its workers and starves the GPU (3-9 %) from its start
    crash = rng.uniform(3600, 4 * 3600)
    run.live(0, crash, 1)
    restart = run.fail_attempt(crash, 1, "missing_module", fix="missing_module")
    run.live(restart, DAY_S, 2)
    run.finish(DAY_S, "done", "completed", 2)
    scale = rng.uniform(0.03, 0.09)
    run.gpu_reading = lambda t, util, _r: util * scale if t >= restart else util
    run.onset_s = crash  # the crash's own message is not a false alert
    run.event_s = restart + sum(run.startup_s)


def input_bound_slow_startup(run: SimRun, rng: random.Random) -> None:
    # input_bound after a silent 8-20 min start-up (loading, then compiling), GPU idle in it
    run.startup_s = (rng.uniform(3, 8) * MIN, rng.uniform(5, 12) * MIN)
    input_bound(run, rng)


def idle_blips(run: SimRun, rng: random.Random) -> None:
    # a healthy run whose read lands on host-side work now and then: 3-8 % of training
    # readings at 0-8 % (must not alert)
    odds = rng.uniform(0.03, 0.08)
    run.gpu_reading = lambda _t, util, r: r.uniform(0, 8) if r.random() < odds else util
    _healthy_day(run)


def rare_logger_idle_blips(run: SimRun, rng: random.Random) -> None:
    # idle_blips in a trainer that prints only every 2-8 min (must not alert)
    run.output_every_s = rng.uniform(2, 8) * MIN
    idle_blips(run, rng)


# -- written with the five above, but not run until the low-GPU change was final: held out from
# it ----------------------------------------------------------------------------------------


def epoch_shuffles(run: SimRun, rng: random.Random) -> None:
    # every 1-3 h a 2-6 min stretch of host-side work (a shard shuffled, a new file opened)
    # while the trainer prints: its GPU readings at 0-8 % (must not alert)
    spans: list[tuple[float, float]] = []
    t = rng.uniform(1800, 3 * 3600)
    while t < DAY_S - 3600:
        spans.append((t, t + rng.uniform(2, 6) * MIN))
        t += rng.uniform(1, 3) * 3600
    run.gpu_reading = lambda at_s, util, r: (
        r.uniform(0, 8) if any(a <= at_s < b for a, b in spans) else util
    )
    _healthy_day(run)


def rare_logger_bursty_input_bound(run: SimRun, rng: random.Random) -> None:
    # bursty_input_bound in a trainer that prints only every 2-8 min
    run.output_every_s = rng.uniform(2, 8) * MIN
    bursty_input_bound(run, rng)


def input_bound_frequent_evals(run: SimRun, rng: random.Random) -> None:
    # input_bound, with a 5-9 min eval (GPU busy) every 15-30 min
    run.eval_every_s = rng.uniform(15, 30) * MIN
    input_bound(run, rng)


def idle_blips_long_checkpoints(run: SimRun, rng: random.Random) -> None:
    # idle_blips, with checkpoint saves of 5-15 min (GPU idle, I/O busy) (must not alert)
    run.ckpt_s = (5 * MIN, 15 * MIN)
    idle_blips(run, rng)


# -- a run's first hour, written 2026-12-01 (fourth session) before the slow rule learned a
# warm-up: held out from that change ----------------------------------------------------------


def slow_first_minutes(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-10 %, the first 15-40 min of training at 50-75 % of the rate
    # (recompiles, a cold cache) before it reaches its rate (must not alert)
    slow_s, share = rng.uniform(15, 40) * MIN, rng.uniform(0.5, 0.75)
    _first_minutes(run, slow_s, share, (0.9, 1.1))


def long_startup_burst(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-10 %, the first 30-60 min of training 30-50 % faster (a longer
    # curriculum stage) (must not alert)
    burst, fast = rng.uniform(30, 60) * MIN, rng.uniform(1.3, 1.5)
    _first_minutes(run, burst, fast, (0.9, 1.1))


def early_step_down(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-10 %, and 40-90 min into the run the rate steps down to 45-60 % for
    # good (a neighbour arrives early)
    run.scatter = _uniform(0.10)
    _step_down(run, rng.uniform(40, 90) * MIN, rng.uniform(0.45, 0.6))


def boost_then_throttle(run: SimRun, rng: random.Random) -> None:
    # readings scattered +-10 %, the first 5-15 min of training 15-30 % faster (boost clocks
    # on a cold GPU, then its thermal limit) (must not alert)
    burst, fast = rng.uniform(5, 15) * MIN, rng.uniform(1.15, 1.3)
    _first_minutes(run, burst, fast, (0.9, 1.1))


# -- the GPU's work through a slowdown, written 2026-12-01 (sixth session) before the slow rule
# read the GPU's utilisation and power: held out from that change ------------------------------


def _from(at_s: float, share: float) -> Callable[[float, random.Random], float]:
    """A power scale: `share` from `at_s` on, readings scattered +-5 %."""
    return lambda t, r: (share if t >= at_s else 1.0) * r.uniform(0.95, 1.05)


def _busy_step_down(run: SimRun, rng: random.Random, share: tuple[float, float]) -> float:
    """Readings +-10 %, and at 2-16 h the rate steps down to `share` of it for good, the GPU
    as busy; returns when."""
    start = rng.uniform(2 * 3600, 16 * 3600)
    run.scatter = _uniform(0.10)
    _step_down(run, start, rng.uniform(*share))
    run.step_keeps_util = True
    return start


def throttle_step_down(run: SimRun, rng: random.Random) -> None:
    # readings +-10 %, and at 2-16 h the GPU clocks down for good (its thermal or power limit):
    # the rate to 55-70 %, utilisation unchanged (each kernel runs longer), power to 55-75 %
    start = _busy_step_down(run, rng, (0.55, 0.7))
    run.power_scale = _from(start, rng.uniform(0.55, 0.75))


def congested_step_down(run: SimRun, rng: random.Random) -> None:
    # readings +-10 %, and at 2-16 h the interconnect of a multi-GPU run congests for good: the
    # rate to 45-65 %, the GPU reading 95-100 % busy (collectives spin), power to 50-70 %
    start = _busy_step_down(run, rng, (0.45, 0.65))
    run.gpu_reading = lambda t, util, r: r.uniform(95, 100) if t >= start else util
    run.power_scale = _from(start, rng.uniform(0.5, 0.7))


def shared_gpu_step_down(run: SimRun, rng: random.Random) -> None:
    # readings +-10 %, and at 2-16 h a stray process (a leftover of an earlier launch) starts
    # computing on the run's GPU: the rate to 45-60 %, the GPU as busy and drawing as much
    _busy_step_down(run, rng, (0.45, 0.6))


def batch_ramp(run: SimRun, rng: random.Random) -> None:
    # readings +-10 %, and over the first 20-90 min of training the steps get heavier (a batch
    # size ramp, longer sequences): the rate falls to 50-70 % of its first and stays there, the
    # GPU as busy throughout (must not alert)
    _healthy_day(run)
    begins, ramp_s, share = sum(run.startup_s), rng.uniform(20, 90) * MIN, rng.uniform(0.5, 0.7)

    def scatter(t: float, r: random.Random) -> float:
        done = min(1.0, max(0.0, (t - begins) / ramp_s))
        return r.uniform(0.9, 1.1) * (1.0 - (1.0 - share) * done)

    run.scatter = scatter


def heavier_stage(run: SimRun, rng: random.Random) -> None:
    # readings +-10 %, and at 2-16 h a costlier stage begins for good (longer sequences, a
    # larger resolution): the rate to 55-75 %, the GPU as busy (must not alert)
    start, share = rng.uniform(2 * 3600, 16 * 3600), rng.uniform(0.55, 0.75)
    _healthy_day(run)
    run.scatter = lambda t, r: r.uniform(0.9, 1.1) * (share if t >= start else 1.0)


def noisy_gpu_startup_burst(run: SimRun, rng: random.Random) -> None:
    # startup_burst, its GPU readings scattered: utilisation 60-100 %, power +-25 % (must not
    # alert)
    startup_burst(run, rng)
    run.gpu_reading = lambda _t, util, r: min(100.0, util * r.uniform(0.7, 1.1))
    run.power_scale = lambda _t, r: r.uniform(0.75, 1.25)


# -- the GPU's readings as scattered as noisy_gpu_startup_burst's, written 2026-12-01 (seventh
# session) before the GPU-work gate weighed how scattered its readings are: held out from that
# change --------------------------------------------------------------------------------------


def _noisy_gpu(run: SimRun, power: Callable[[float, random.Random], float] | None) -> None:
    """A training GPU's utilisation scattered to 70-110 % of its value (capped at 100), its
    power +-25 % around `power` (1.0 when None)."""
    run.gpu_reading = lambda _t, util, r: min(100.0, util * r.uniform(0.7, 1.1))
    run.power_scale = lambda t, r: (power(t, r) if power else 1.0) * r.uniform(0.75, 1.25)


def noisy_gpu_heavier_stage(run: SimRun, rng: random.Random) -> None:
    # heavier_stage, its GPU readings scattered as noisy_gpu_startup_burst's (must not alert)
    heavier_stage(run, rng)
    _noisy_gpu(run, None)


def noisy_gpu_throttle(run: SimRun, rng: random.Random) -> None:
    # throttle_step_down, its GPU readings scattered as noisy_gpu_startup_burst's
    start = _busy_step_down(run, rng, (0.55, 0.7))
    _noisy_gpu(run, _from(start, rng.uniform(0.55, 0.75)))


def noisy_gpu_mild_wait(run: SimRun, rng: random.Random) -> None:
    # readings +-10 %, GPU readings scattered: at 2-16 h the GPU starts waiting (a slower data
    # source, a neighbour): the rate and the GPU's utilisation to 65-80 % for good, power as
    # before (the simulator's training draw does not follow utilisation)
    _step_down(run, rng.uniform(2 * 3600, 16 * 3600), rng.uniform(0.65, 0.8))
    run.scatter = _uniform(0.10)
    _noisy_gpu(run, None)


# -- a trainer that prints every few minutes, with the hard cases (written 2026-12-01,
# before the low-GPU rule learned a trainer's print gap) -------------------------------------


Build = Callable[[SimRun, random.Random], None]


def _printing(
    lo_min: float, hi_min: float, late: tuple[float, float] | None = None
) -> Callable[[Build], Build]:
    """`build`, in a trainer that prints every `lo_min`-`hi_min` min, each print up to a share
    drawn from `late` of that late (`SimRun.output_jitter`)."""

    def wrap(build: Build) -> Build:
        def printing(run: SimRun, rng: random.Random) -> None:
            run.output_every_s = rng.uniform(lo_min, hi_min) * MIN
            if late is not None:
                run.output_jitter = rng.uniform(*late)
            build(run, rng)

        return printing

    return wrap


_rare = _printing(2, 8)


# -- a trainer's print gap, written 2026-12-01 (fifth session) before the low-GPU rule's print
# gap was estimated afresh: held out from that change -----------------------------------------


# a trainer that prints every 2-8 min, each print up to 30-60 % of that late (it prints every
# N steps, and its batches are of uneven length)
_jittery = _printing(2, 8, (0.3, 0.6))
# a trainer that prints every 1-2.5 min: about the explained-silence window
_minutely = _printing(1, 2.5)


def input_bound_long_checkpoints(run: SimRun, rng: random.Random) -> None:
    # input_bound, with checkpoint saves of 5-15 min (GPU idle, I/O busy)
    run.ckpt_s = (5 * MIN, 15 * MIN)
    input_bound(run, rng)


# -- a save every 20-40 min, written 2026-12-02 (ninth session) before the learned GPU work
# stopped taking readings from a check silent past the trainer's print gap (maybe a save's
# first seconds): held out from that change -------------------------------------------------


def _frequent_saves(build: Build) -> Build:
    """`build`, in a trainer that evaluates briefly (30-90 s, GPU busy) and saves a checkpoint
    (3-6 min, GPU idle, I/O busy) every 20-40 min."""

    def saving(run: SimRun, rng: random.Random) -> None:
        run.eval_every_s = rng.uniform(20, 40) * MIN
        run.eval_s = (30.0, 90.0)
        run.ckpt_s = (3 * MIN, 6 * MIN)
        build(run, rng)

    return saving


def mild_wait(run: SimRun, rng: random.Random) -> None:
    # readings +-10 %: at 2-16 h the GPU starts waiting (a slower data source, a neighbour): the
    # rate and the GPU's utilisation to 65-80 % for good, power as before
    _step_down(run, rng.uniform(2 * 3600, 16 * 3600), rng.uniform(0.65, 0.8))
    run.scatter = _uniform(0.10)


FAMILIES = (
    Family("slow_startup", "silent start-up 8-20 min, GPU idle, CPU/disk busy", slow_startup),
    Family(
        "long_checkpoints",
        "checkpoint saves 5-15 min, GPU idle, I/O busy",
        long_checkpoints,
        tuned=True,  # the low-GPU onset (2026-12-01, fourth session) was designed on it
    ),
    Family("long_eval_busy", "evals 15-40 min, GPU busy, dataloader reading", long_evals("eval")),
    Family(
        "long_eval_in_memory",
        "evals 15-40 min, GPU busy, eval set in memory (no I/O)",
        long_evals("eval_noio"),
    ),
    Family("long_eval_cpu", "evals 15-40 min on the CPU, GPU idle", long_evals("eval_cpu")),
    Family("busy_gpu_hang", "deadlock: GPU spinning at 100 %, no output, no I/O", busy_hang, True),
    Family("idle_gpu_hang", "hang: GPU idle, no output, no CPU, no I/O", idle_hang, True),
    Family("preempted", "instance lost mid-run: unreachable for good", preempted, True),
    Family("unreachable_periods", "3-6 network blips of 1-10 min", unreachable_periods),
    Family(
        "throughput_decay",
        "throughput decays to 30 % over 4-12 h",
        throughput_decay,
        True,
        slowdown=True,
        tuned=True,
    ),
    Family(
        "throughput_dips",
        "1-4 slowdowns a day to 20-70 % for 2-20 min, then back (must not alert)",
        throughput_dips,
        tuned=True,
    ),
    Family(
        "periodic_slow_phases",
        "every 1-2 h a 15-40 min phase at 30-60 % of the rate (must not alert)",
        periodic_slow_phases,
        tuned=True,
    ),
    Family(
        "noisy_throughput",
        "throughput readings scattered +-20 % around the rate (must not alert)",
        noisy_throughput,
        tuned=True,
    ),
    Family(
        "irregular_slow_phases",
        "slow phases at random moments (mean gap 1-3 h), of random length (typically 10-30 "
        "min, at most 60) at 30-65 % of the rate (must not alert)",
        irregular_slow_phases,
        tuned=True,  # its phase lengths set the cost gate's hour (slow_lost)
    ),
    Family(
        "periodic_then_decay",
        "the periodic phases, then from 6-14 h a decay to 30 % over 2-8 h",
        periodic_then_decay,
        True,
        slowdown=True,
        tuned=True,  # looked at when the cost gate was designed
    ),
    # written before the lost-progress rule was built or measured (2026-11-30), to judge it
    Family(
        "fast_decay", "throughput decays to 30 % over 20-90 min", fast_decay, True, True, tuned=True
    ),
    Family(
        "noisy_slow_decay",
        "readings scattered +-20 %, a decay to 30 % over 6-16 h",
        noisy_slow_decay,
        True,
        True,
        tuned=True,
    ),
    Family(
        "settled_lower",
        "the rate steps down to 50-68 % for good at 2-20 h",
        settled_lower,
        True,
        True,
        tuned=True,
    ),
    Family(
        "phases_then_collapse",
        "irregular slow phases, then at 6-18 h a collapse to 20-45 % for good under them",
        phases_then_collapse,
        True,
        True,
        tuned=True,  # its late collapses led to learning sags by cost
    ),
    Family(
        "deep_short_phases",
        "every 30-120 min a 5-25 min phase at 5-25 % of the rate (must not alert)",
        deep_short_phases,
        tuned=True,  # led to low_gpu leaving a sagging rate to the slow rule
    ),
    # written after the cost gate's first measurement, before the changes it led to
    Family(
        "input_bound",
        "GPU 3-9 % busy from the start at the run's own steady rate (told as low_gpu)",
        input_bound,
        True,
        tuned=True,  # led to the low-GPU episode and its told-once
    ),
    Family(
        "gpu_falls_idle",
        "at 2-20 h the GPU falls idle and the rate to 3-10 % for good",
        gpu_falls_idle,
        True,
        True,
        tuned=True,  # its drip was seen before the low-GPU episode
    ),
    Family(
        "irregular_phases_then_decay",
        "irregular slow phases, and from 6-16 h a decay to 30 % over 1-4 h under them",
        irregular_phases_then_decay,
        True,
        True,
    ),
    # written before the sag's and the idle GPU's next changes were built (2026-11-30)
    Family(
        "noisy_step_down",
        "readings scattered +-20 %, the rate steps down to 50-68 % for good at 2-20 h",
        noisy_step_down,
        True,
        True,
        tuned=True,
    ),
    Family(
        "noisy_slow_phases",
        "readings scattered +-20 %, irregular slow phases (must not alert)",
        noisy_slow_phases,
        tuned=True,
    ),
    Family(
        "rare_logger",
        "a healthy trainer printing every 2-8 min (must not alert)",
        rare_logger,
        tuned=True,  # checked while the low-GPU rule learned the print gap (2026-12-01)
    ),
    Family(
        "input_bound_rare_logger",
        "input_bound, the trainer printing every 2-8 min",
        input_bound_rare_logger,
        True,
        tuned=True,  # its results led to the episode's quiet readings (2026-11-30)
    ),
    Family(
        "input_bound_long_evals",
        "input_bound, with 15-40 min evals every 1-2 h that keep the GPU busy",
        input_bound_long_evals,
        True,
        tuned=True,  # its results led to the episode's quiet readings (2026-11-30)
    ),
    Family(
        "gaussian_step_down",
        "readings scattered normally (sigma 10-15 %), a step down to 50-65 % for good",
        gaussian_step_down,
        True,
        True,
        tuned=True,
    ),
    Family(
        "noisy_collapse",
        "readings scattered +-25 %, a collapse to 25-45 % for good",
        noisy_collapse,
        True,
        True,
        tuned=True,
    ),
    Family(
        "noisy_periodic_phases",
        "readings scattered +-25 %, periodic slow phases (must not alert)",
        noisy_periodic_phases,
        tuned=True,
    ),
    Family(
        "noise_grows", "scatter +-5 %, from 4-12 h +-30 % (must not alert)", noise_grows, tuned=True
    ),
    Family(
        "slow_batches",
        "5-15 % of readings at 40-70 % of the rate (must not alert)",
        slow_batches,
        tuned=True,
    ),
    Family(
        "noisy_dips",
        "readings scattered +-20 %, transient dips (must not alert)",
        noisy_dips,
        tuned=True,
    ),
    Family(
        "noisy_fast_decay",
        "readings scattered +-20 %, a decay to 30 % over 20-90 min",
        noisy_fast_decay,
        True,
        True,
        tuned=True,
    ),
    Family(
        "noisy_long_phases",
        "readings scattered +-25 %, slow phases of 20-45 min every 1-3 h (must not alert)",
        noisy_long_phases,
        tuned=True,
    ),
    Family(
        "lognormal_decay",
        "readings x a log-normal (sigma 0.15), a decay to 30 % over 3-10 h",
        lognormal_decay,
        True,
        True,
        tuned=True,
    ),
    Family(
        "bursty_noise",
        "scatter +-5 %, +-35 % in 1-2 h bursts every 3-6 h (must not alert)",
        bursty_noise,
        tuned=True,
    ),
    Family(
        "noisy_step_with_dips",
        "readings scattered +-15 %, transient dips, a step down to 45-60 % for good",
        noisy_step_with_dips,
        True,
        True,
        tuned=True,
    ),
    Family(
        "startup_burst",
        "readings +-15 %, the first 10-30 min of training 30-60 % faster (must not alert)",
        startup_burst,
        tuned=True,  # a warm-up settle was designed on it (2026-12-01, fourth session; reverted)
    ),
    Family(
        "diurnal_drift",
        "the rate drifting +-10-15 % over 4-8 h, readings +-15 % (must not alert)",
        diurnal_drift,
    ),
    Family(
        "two_step_down",
        "readings +-15 %, a step to 78-88 %, 2-6 h later to 50-60 % for good",
        two_step_down,
        True,
        True,
    ),
    Family(
        "collapse_partial_recovery",
        "readings +-10 %, a collapse to 20-35 % for 1-2 h, then 55-65 % for good",
        collapse_partial_recovery,
        True,
        True,
    ),
    Family(
        "heavy_tailed_phases",
        "readings sigma 8 % with 5 % far out either way, a neighbour's slow phases (must not "
        "alert)",
        heavy_tailed_phases,
    ),
    Family(
        "bursty_input_bound",
        "input_bound, 15-25 % of training readings at 25-60 % (a batch at the read)",
        bursty_input_bound,
        True,
        tuned=True,  # the low-GPU onset (2026-12-01, fourth session) was designed on it
    ),
    Family(
        "input_bound_retry",
        "healthy 1-4 h, a fixed crash, the retry starved at 3-9 % GPU",
        input_bound_retry,
        True,
        tuned=True,  # the low-GPU onset (2026-12-01, fourth session) was designed on it
    ),
    Family(
        "input_bound_slow_startup",
        "input_bound after a silent 8-20 min start-up, GPU idle",
        input_bound_slow_startup,
        True,
        tuned=True,  # the low-GPU onset (2026-12-01, fourth session) was designed on it
    ),
    Family(
        "idle_blips",
        "healthy, 3-8 % of training GPU readings at 0-8 % (must not alert)",
        idle_blips,
        tuned=True,  # the low-GPU onset (2026-12-01, fourth session) was designed on it
    ),
    Family(
        "rare_logger_idle_blips",
        "idle_blips, printing every 2-8 min (must not alert)",
        rare_logger_idle_blips,
        tuned=True,  # the low-GPU onset (2026-12-01, fourth session) was designed on it
    ),
    Family(
        "epoch_shuffles",
        "every 1-3 h, 2-6 min of host-side work at 0-8 % GPU while printing (must not alert)",
        epoch_shuffles,
    ),
    Family(
        "rare_logger_bursty_input_bound",
        "bursty_input_bound, printing every 2-8 min",
        rare_logger_bursty_input_bound,
        True,
        tuned=True,  # the print gap's estimate (2026-12-01, fifth session) was chosen on it
    ),
    Family(
        "input_bound_frequent_evals",
        "input_bound, a 5-9 min eval every 15-30 min",
        input_bound_frequent_evals,
        True,
        tuned=True,  # the onset's eval recheck (2026-12-01, fifth session) was chosen on it
    ),
    Family(
        "idle_blips_long_checkpoints",
        "idle_blips, with 5-15 min checkpoint saves, GPU idle (must not alert)",
        idle_blips_long_checkpoints,
    ),
    Family(
        "slow_first_minutes",
        "readings +-10 %, the first 15-40 min of training at 50-75 % (must not alert)",
        slow_first_minutes,
        tuned=True,  # chose between rules on it (the warm-up settle, reverted 2026-12-01)
    ),
    Family(
        "long_startup_burst",
        "readings +-10 %, the first 30-60 min of training 30-50 % faster (must not alert)",
        long_startup_burst,
        tuned=True,  # chose between rules on it (the warm-up settle, reverted 2026-12-01)
    ),
    Family(
        "early_step_down",
        "readings +-10 %, a step down to 45-60 % for good 40-90 min into the run",
        early_step_down,
        True,
        True,
        tuned=True,  # chose between rules on it (the warm-up settle, reverted 2026-12-01)
    ),
    Family(
        "boost_then_throttle",
        "readings +-10 %, the first 5-15 min of training 15-30 % faster (must not alert)",
        boost_then_throttle,
        tuned=True,  # chose between rules on it (the warm-up settle, reverted 2026-12-01)
    ),
    Family(
        "throttle_step_down",
        "readings +-10 %, at 2-16 h clocks throttled: rate 55-70 %, GPU as busy, power 55-75 %",
        throttle_step_down,
        True,
        True,
    ),
    Family(
        "congested_step_down",
        "readings +-10 %, at 2-16 h collectives congest: rate 45-65 %, GPU 95-100 %, power 50-70 %",
        congested_step_down,
        True,
        True,
    ),
    Family(
        "shared_gpu_step_down",
        "readings +-10 %, at 2-16 h a stray process shares the GPU: rate 45-60 %, GPU as busy",
        shared_gpu_step_down,
        True,
        True,
    ),
    Family(
        "batch_ramp",
        "readings +-10 %, the rate falls to 50-70 % over the first 20-90 min, GPU as busy "
        "(must not alert)",
        batch_ramp,
    ),
    Family(
        "heavier_stage",
        "readings +-10 %, at 2-16 h heavier steps for good: rate 55-75 %, GPU as busy "
        "(must not alert)",
        heavier_stage,
    ),
    Family(
        "noisy_gpu_startup_burst",
        "startup_burst, GPU readings scattered: utilisation 60-100 %, power +-25 % "
        "(must not alert)",
        noisy_gpu_startup_burst,
        # the GPU's readings as the supervisor's recent medians (2026-12-01) were aimed at it
        tuned=True,
    ),
    Family(
        "rare_logger_long_checkpoints",
        "printing every 2-8 min, checkpoint saves 5-15 min, GPU idle, I/O busy",
        _rare(long_checkpoints),
    ),
    Family(
        "rare_logger_slow_startup",
        "printing every 2-8 min, silent start-up 8-20 min, GPU idle, CPU/disk busy",
        _rare(slow_startup),
    ),
    Family(
        "rare_logger_long_eval_cpu",
        "printing every 2-8 min, evals 15-40 min on the CPU, GPU idle",
        _rare(long_evals("eval_cpu")),
    ),
    Family(
        "rare_logger_idle_hang",
        "printing every 2-8 min, then a hang, GPU idle",
        _rare(idle_hang),
        True,
    ),
    Family(
        "rare_logger_busy_hang",
        "printing every 2-8 min, then a deadlock, GPU spinning",
        _rare(busy_hang),
        True,
    ),
    Family(
        "rare_logger_gpu_falls_idle",
        "printing every 2-8 min, then the GPU falls idle and the rate to 3-10 %",
        _rare(gpu_falls_idle),
        True,
        True,
        tuned=True,
    ),
    Family(
        "jittery_rare_input_bound",
        "input_bound, printing every 2-8 min, each print up to 30-60 % late",
        _jittery(input_bound),
        True,
    ),
    Family(
        "jittery_rare_long_checkpoints",
        "long_checkpoints, printing every 2-8 min, each print up to 30-60 % late",
        _jittery(long_checkpoints),
    ),
    Family(
        "jittery_rare_idle_blips",
        "idle_blips, printing every 2-8 min, each print up to 30-60 % late",
        _jittery(idle_blips),
    ),
    Family(
        "jittery_rare_busy_hang",
        "a busy-GPU hang, printing every 2-8 min, each print up to 30-60 % late",
        _jittery(busy_hang),
        True,
    ),
    Family(
        "rare_logger_epoch_shuffles",
        "epoch_shuffles, printing every 2-8 min (must not alert)",
        _rare(epoch_shuffles),
    ),
    Family(
        "rare_input_bound_long_checkpoints",
        "input_bound with checkpoint saves of 5-15 min, printing every 2-8 min",
        _rare(input_bound_long_checkpoints),
        True,
    ),
    Family(
        "minute_logger_input_bound",
        "input_bound, printing every 1-2.5 min",
        _minutely(input_bound),
        True,
    ),
    Family(
        "minute_logger_long_checkpoints",
        "long_checkpoints, printing every 1-2.5 min (must not alert)",
        _minutely(long_checkpoints),
    ),
    Family(
        "noisy_gpu_heavier_stage",
        "heavier_stage, GPU readings scattered: utilisation 70-110 %, power +-25 % "
        "(must not alert)",
        noisy_gpu_heavier_stage,
    ),
    Family(
        "noisy_gpu_throttle",
        "throttle_step_down, GPU readings scattered: utilisation 70-110 %, power +-25 %",
        noisy_gpu_throttle,
        True,
        True,
    ),
    Family(
        "noisy_gpu_mild_wait",
        "readings +-10 %, GPU readings scattered, at 2-16 h the rate and utilisation to 65-80 %",
        noisy_gpu_mild_wait,
        True,
        True,
    ),
    Family(
        "frequent_saves_throttle",
        "throttle_step_down, with a 30-90 s eval and a 3-6 min save (GPU idle) every 20-40 min",
        _frequent_saves(throttle_step_down),
        True,
        True,
    ),
    Family(
        "frequent_saves_mild_wait",
        "readings +-10 %, a 3-6 min save every 20-40 min, at 2-16 h the rate and GPU to 65-80 %",
        _frequent_saves(mild_wait),
        True,
        True,
    ),
    Family(
        "frequent_saves_heavier_stage",
        "heavier_stage, with a 3-6 min save every 20-40 min (must not alert)",
        _frequent_saves(heavier_stage),
    ),
)
KINDS = {
    "busy_gpu_hang": "hang_busy",
    "idle_gpu_hang": "hang",
    "preempted": "preempted",
    "throughput_decay": "decay",
    "periodic_then_decay": "decay",
    "fast_decay": "decay",
    "noisy_slow_decay": "decay",
    "settled_lower": "decay",
    "phases_then_collapse": "decay",
    "input_bound": "gpu_idle",
    "gpu_falls_idle": "decay",
    "irregular_phases_then_decay": "decay",
    "noisy_step_down": "decay",
    "input_bound_rare_logger": "gpu_idle",
    "input_bound_long_evals": "gpu_idle",
    "gaussian_step_down": "decay",
    "noisy_collapse": "decay",
    "noisy_fast_decay": "decay",
    "lognormal_decay": "decay",
    "noisy_step_with_dips": "decay",
    "two_step_down": "decay",
    "collapse_partial_recovery": "decay",
    "bursty_input_bound": "gpu_idle",
    "input_bound_retry": "gpu_idle",
    "input_bound_slow_startup": "gpu_idle",
    "rare_logger_bursty_input_bound": "gpu_idle",
    "input_bound_frequent_evals": "gpu_idle",
    "early_step_down": "decay",
    "rare_logger_idle_hang": "hang",
    "rare_logger_busy_hang": "hang_busy",
    "rare_logger_gpu_falls_idle": "decay",
    "jittery_rare_input_bound": "gpu_idle",
    "jittery_rare_busy_hang": "hang_busy",
    "rare_input_bound_long_checkpoints": "gpu_idle",
    "minute_logger_input_bound": "gpu_idle",
    "throttle_step_down": "decay",
    "congested_step_down": "decay",
    "shared_gpu_step_down": "decay",
    "noisy_gpu_throttle": "decay",
    "noisy_gpu_mild_wait": "decay",
    "frequent_saves_throttle": "decay",
    "frequent_saves_mild_wait": "decay",
}


def make_family_run(family: str, index: int, seed: int) -> SimRun:
    spec = next(f for f in FAMILIES if f.name == family)
    run, rng = _base(index, seed, family, KINDS.get(family, "healthy"))
    spec.build(run, rng)
    return run
