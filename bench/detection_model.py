"""The simulated supervisor of `bench.detection`: one run's state.json as a function of time.

A run is a list of phases (status, attempt, what the trainer is doing). The trainer prints every
10 s while training; it is silent during evals (GPU busy, every 20 min to 2 h), checkpoint
writes (GPU idle, short), start-up and hangs (GPU idle, for good). The heartbeat advances
every 15 s until the supervisor exits. A stall kill from the watcher rewrites the future:
the attempt ends, the supervisor backs off and retries. Everything is seeded per run, so every
policy sees the same fleet.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from supervisor.progress import ProgressTracker

DAY_S = 86400.0
FAR_S = 10 * DAY_S
T0 = datetime(2026, 11, 28, 0, 0, 0, tzinfo=UTC)
HEARTBEAT_S = 15.0
OUTPUT_EVERY_S = 10.0
STARTUP_S = 30.0
EVAL_EVERY_S = (1200.0, 7200.0)  # each run evaluates at its own period in this range
OUTPUT_MODES = frozenset({"train", "slow", "decay"})
# (CPU progress, I/O progress) of the trainer's process tree in each mode, as
# supervisor/proctree.py would see it: a deadlock spinning the GPU spins a CPU thread too
TREE = {
    "train": (True, True),
    "slow": (True, True),
    "decay": (True, True),
    "startup": (True, True),  # loading weights: reads, unpickles
    "compile": (True, False),  # torch.compile warm-up: CPU only
    "eval": (True, True),  # the eval dataloader reads
    "eval_noio": (True, False),  # an eval set already in memory
    "eval_cpu": (True, False),  # generation metrics computed on the CPU, GPU idle
    "ckpt": (False, True),  # a checkpoint write: bytes, little CPU
    "hung": (False, False),
    "hung_busy": (True, False),
}
NO_TRAINER = frozenset({"retrying", "terminal", "gone"})
THROUGHPUT_WINDOW_S = 120.0
WAIT_TIMEOUT_S = 300.0  # core.config WatcherConfig.wait_timeout

# share of the fleet per kind; "healthy", "completed" and "early_stop" have nothing wrong
KIND_WEIGHTS = {
    "healthy": 0.40,
    "completed": 0.15,
    "early_stop": 0.10,
    "crash_fixed": 0.10,
    "crash_exhausted": 0.07,
    "hang": 0.10,
    "collapse": 0.08,
}
HEALTHY_KINDS = frozenset({"healthy", "completed", "early_stop"})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass(slots=True)
class Phase:
    start: float
    end: float
    status: str
    attempt: int
    mode: str  # startup train eval ckpt slow hung retrying terminal
    out_base: float | None = None  # when the trainer last printed, as this phase begins
    outcome: str | None = None
    degraded: bool = False  # inside a throughput collapse
    cpu_base: float | None = None  # when the tree's CPU / I/O last moved, as this phase begins
    io_base: float | None = None


@dataclass(slots=True)
class SimRun:
    index: int
    kind: str
    seed: int
    rate: float = 2.0  # steps per second
    eval_every_s: float = 7200.0
    max_attempts: int = 3
    phases: list[Phase] = field(default_factory=list)
    startup_s: tuple[float, ...] = (STARTUP_S,)  # silent start-up phases, each load then compile
    eval_s: tuple[float, float] = (300.0, 540.0)  # silent, GPU busy
    eval_mode: str = "eval"
    ckpt_s: tuple[float, float] = (60.0, 180.0)  # silent, GPU idle
    dark: list[tuple[float, float]] = field(default_factory=list)  # unreachable periods
    decay: tuple[float, float] | None = None  # (start, ramp) of a slow throughput decay
    step_down: tuple[float, float] | None = None  # (start, share): the rate falls for good
    later_steps: list[tuple[float, float]] = field(default_factory=list)  # then (start, share)
    dips: list[tuple[float, float, float]] = field(default_factory=list)  # (start, end, share)
    noise: float = 0.0  # each throughput reading scattered by up to this share either way
    # each reading at `t` also multiplied by scatter(t, rng) (the held-out noise shapes)
    scatter: Callable[[float, random.Random], float] | None = None
    output_every_s: float = OUTPUT_EVERY_S  # how often the training trainer prints
    # each print lands up to this share of output_every_s after its slot (batches of uneven
    # length: a trainer printing every N steps), so its gaps vary by up to that share either way
    output_jitter: float = 0.0
    gpu_scale: float = 1.0  # a training GPU's utilisation scaled by this (input-bound: < 0.1)
    # a training GPU's reading at `t` (after gpu_scale) replaced by gpu_reading(t, util, rng)
    gpu_reading: Callable[[float, float, random.Random], float] | None = None
    # a step down or decay that leaves a training GPU as busy (its kernels run longer at lower
    # clocks, or spin in a congested collective): utilisation not scaled by the rate's share
    step_keeps_util: bool = False
    # a training GPU's power draw at `t` scaled by power_scale(t, rng) (clocks throttled, a
    # spinning collective, or scatter in the readings)
    power_scale: Callable[[float, random.Random], float] | None = None
    event_s: float | None = None  # when the thing worth detecting happened
    onset_s: float | None = None  # a gradual one's start: alerts from here on are not false
    ended_s: float | None = None
    failures: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    fixes: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    # the supervisor's tracker of a rare printer, fed up to _fed_s (`_rare_rate`)
    _tracker: ProgressTracker | None = field(default=None, repr=False, compare=False)
    _tracker_attempt: int = field(default=0, repr=False, compare=False)
    _fed_s: float = field(default=0.0, repr=False, compare=False)
    _moved: int = field(default=0, repr=False, compare=False)

    # -- building the timeline -------------------------------------------------------------

    def add(
        self, start: float, end: float, status: str, attempt: int, mode: str, slow: bool = False
    ) -> None:
        if end <= start:
            return
        out_base = cpu_base = io_base = None
        if self.phases:
            prev = self.phases[-1]
            out_base = prev.end if prev.mode in OUTPUT_MODES else prev.out_base
            cpu, io = TREE.get(prev.mode, (False, False))
            cpu_base = prev.end if cpu else prev.cpu_base
            io_base = prev.end if io else prev.io_base
            if prev.attempt != attempt or prev.mode in NO_TRAINER:
                # a new trainer: the supervisor's tracker starts afresh, first reading counts
                cpu_base = io_base = start
        phase = Phase(start, end, status, attempt, mode, out_base, degraded=slow)
        phase.cpu_base, phase.io_base = cpu_base, io_base
        self.phases.append(phase)

    def live(
        self, start: float, end: float, attempt: int, mode: str = "train", *, boot: bool = True
    ) -> None:
        """The trainer of `attempt` from `start` to `end`, with periodic evals and checkpoints."""
        t = start
        if boot:
            for i, length in enumerate(self.startup_s):
                self.add(t, min(end, t + length), "running", attempt, ("startup", "compile")[i % 2])
                t = min(end, t + length)
        offset = self.seed % 1800
        every = self.eval_every_s
        first = (int((t - offset) // every) + 1) * every + offset
        ev = first
        while ev < end:
            self.add(t, ev, "running", attempt, mode)
            eval_end = min(end, ev + self.rng.uniform(*self.eval_s))
            self.add(ev, eval_end, "running", attempt, self.eval_mode, mode == "slow")
            ckpt_start = min(end, eval_end + 20)  # prints the eval results
            self.add(eval_end, ckpt_start, "running", attempt, mode)
            ckpt_end = min(end, ckpt_start + self.rng.uniform(*self.ckpt_s))
            self.add(ckpt_start, ckpt_end, "running", attempt, "ckpt", mode == "slow")
            t = ckpt_end
            ev += every
        self.add(t, end, "running", attempt, mode)

    def fail_attempt(self, when: float, attempt: int, kind: str, *, fix: str | None) -> float:
        """Attempt ends in failure at `when`; returns when the next attempt starts."""
        self.failures.append((when, {"attempt": attempt, "kind": kind, "exit_code": 1}))
        pause = 10.0 * 2 ** (attempt - 1)
        if fix is not None:
            self.fixes.append(
                (when + 30, {"attempt": attempt, "kind": fix, "action": f"fix {fix}", "ok": True})
            )
            pause += 30.0
        self.add(when, when + pause, "retrying", attempt, "retrying")
        return when + pause

    def finish(self, when: float, status: str, outcome: str, attempt: int) -> None:
        self.add(when, FAR_S, status, attempt, "terminal")
        self.phases[-1].outcome = outcome
        self.ended_s = when

    def kill(self, when: float) -> None:
        """The watcher's `ctl kill-attempt`: the supervisor retries, or fails at the budget."""
        phase = self.phase_at(when)
        if phase.status != "running":
            return
        self.phases = [p for p in self.phases if p.start < when]
        self.phases[-1].end = when
        attempt = phase.attempt
        if attempt >= self.max_attempts:
            self.failures.append((when, {"attempt": attempt, "kind": "killed", "exit_code": -15}))
            self.finish(when, "failed", "budget_exhausted", attempt)
            return
        restart = self.fail_attempt(when, attempt, "killed", fix=None)
        self.live(restart, DAY_S, attempt + 1)
        self.finish(DAY_S, "done", "completed", attempt + 1)

    # -- reading it ------------------------------------------------------------------------

    def phase_at(self, t: float) -> Phase:
        starts = [p.start for p in self.phases]
        return self.phases[max(0, bisect.bisect_right(starts, t) - 1)]

    def wake_times(self, quiet_s: float) -> list[float]:
        """When `supervisor wait` returns with news, as core/waiter.py drives it: each status
        or attempt change, and the trainer silent for `quiet_s` while running. A "quiet" answer
        disarms quiet until the next change, or until an answer shows the trainer printed again
        (a `wait` timeout, at most WAIT_TIMEOUT_S after it resumed)."""
        times: list[float] = []
        armed, rearm_at = True, 0.0
        for i, p in enumerate(self.phases):
            prev = self.phases[i - 1] if i else None
            if prev is not None and (prev.status, prev.attempt) != (p.status, p.attempt):
                times.append(p.start)
                armed, rearm_at = True, 0.0
            if not armed and p.mode in OUTPUT_MODES:
                armed, rearm_at = True, p.start + WAIT_TIMEOUT_S
            if armed and p.status == "running" and p.mode not in OUTPUT_MODES:
                # the supervisor measures quiet from the attempt log's mtime
                since = max(p.out_base or 0.0, self._attempt_start(i))
                wake = max(since + quiet_s, rearm_at, p.start)
                if wake < p.end:
                    times.append(wake)
                    armed = False
        return sorted(times)

    def _attempt_start(self, i: int) -> float:
        attempt = self.phases[i].attempt
        while i > 0 and self.phases[i - 1].attempt == attempt:
            i -= 1
        return self.phases[i].start

    def rate_share(self, t: float) -> float:
        """The share of its own rate a decaying (or stepped-down) run trains at, at `t` (1.0
        before either began); the run's own transient phases are not counted."""
        share = 1.0
        if self.decay is not None and t >= self.decay[0]:
            share = 1.0 - 0.7 * min(1.0, (t - self.decay[0]) / self.decay[1])
        if self.step_down is not None and t >= self.step_down[0]:
            share *= next(s for a, s in reversed((self.step_down, *self.later_steps)) if t >= a)
        return share

    def lost_s(self, start: float, end: float) -> float:
        """The run's time a decay or step-down has cost from `start` to `end`: the integral of
        (1 - rate_share), in seconds of training at its own rate (summed a minute at a time)."""
        lost, t = 0.0, start
        while t < end:
            step = min(60.0, end - t)
            lost += step * (1.0 - self.rate_share(t + step / 2))
            t += step
        return lost

    def last_print(self, start: float, t: float) -> float:
        """When a trainer training since `start` last printed before `t`."""
        every = self.output_every_s
        if not self.output_jitter:
            return max(start, t - ((t - start) % every))
        k = int((t - start) // every)
        at = start + k * every + self._print_offset(k)
        if at > t:  # this slot's print is still to come
            at = start + (k - 1) * every + self._print_offset(k - 1) if k else start
        return max(start, at)

    def _print_offset(self, k: int) -> float:
        """How late slot `k`'s print lands; slot 0 is the phase's own start (the line that
        begins it: the first after a load, an eval's results), never late."""
        if not k:
            return 0.0
        return (
            self.output_jitter * self.output_every_s * random.Random(self.seed * 7919 + k).random()
        )

    def _rare_rate(self, t: float) -> bool:
        """Whether the supervisor's own ProgressTracker (supervisor/progress.py), fed this
        trainer's step moves up to `t` as its runner would see them, has a rate at `t`: for a
        trainer that prints less often than the tracker's window, its last moves decide."""
        if t < self._fed_s:  # read out of order: feed it afresh
            self._tracker, self._fed_s = None, 0.0
        for when, attempt in self._step_moves(self._fed_s, t):
            if self._tracker is None or attempt != self._tracker_attempt:
                # a new attempt's trainer: the runner starts a fresh tracker
                self._tracker, self._tracker_attempt = ProgressTracker(), attempt
            self._moved += 1
            self._tracker.record(self._moved, when)
        self._fed_s = t
        tracker = self._tracker
        if tracker is None or self.phase_at(t).attempt != self._tracker_attempt:
            return False
        return tracker.throughput(t) is not None

    def _step_moves(self, t0: float, t1: float) -> Iterator[tuple[float, int]]:
        """(when, attempt) of each step move in (t0, t1]: a training phase's print slots after
        its first line (which moves no step: a load's end, an eval's results)."""
        every = self.output_every_s
        for p in self.phases:
            if p.start > t1:
                break  # phases are in order
            if p.mode not in OUTPUT_MODES or p.end <= t0:
                continue
            k = max(1, int((t0 - p.start) // every))
            while True:
                when = p.start + k * every + self._print_offset(k)
                if when >= p.end or when > t1:
                    break
                if when > t0:
                    yield when, p.attempt
                k += 1

    def dark_at(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.dark)

    def state_doc(self, t: float, *, tree: bool = True) -> dict[str, Any]:
        """state.json at `t`, as the supervisor would have written it; `tree` False: an older
        supervisor that does not read the trainer's process tree."""
        p = self.phase_at(t)
        rng = self.rng
        if p.mode in OUTPUT_MODES:
            out: float | None = self.last_print(p.start, t)
        else:
            out = p.out_base
        util, speed = gpu_and_speed(p.mode, rng)
        if p.degraded and speed is not None:
            speed *= 0.3
        share = self.rate_share(t)
        if speed is not None and share < 1.0:
            # a silent phase (an eval, a checkpoint) keeps the rate the trainer last trained
            # at in the supervisor's window: the decayed one, not the run's first
            speed *= share
        if speed is not None:
            util = self.training_util(p, t, util, rng)
        speed = self._dips_and_noise(t, speed)
        if self.output_every_s > THROUGHPUT_WINDOW_S:
            if speed is not None and not self._rare_rate(t):
                speed = None  # the supervisor's tracker reads no rate from its last moves
        elif p.mode not in OUTPUT_MODES and (out is None or t - out > THROUGHPUT_WINDOW_S):
            speed = None  # the supervisor's window holds no step any more
        terminal = p.mode == "terminal"
        beat = p.start if terminal else t - (t % HEARTBEAT_S)
        failure = next((f for w, f in reversed(self.failures) if w <= t), None)
        return {
            "schema": 1,
            "run": f"run-{self.index:04d}",
            "status": p.status,
            "outcome": p.outcome,
            "attempt": p.attempt,
            "max_attempts": self.max_attempts,
            "step": None if out is None else int(out * self.rate),
            "total_steps": int(DAY_S * self.rate),
            "last_step_at": None if out is None else at(out),
            "last_output_at": None if out is None else at(out),
            "heartbeat_at": at(beat),
            "started_at": T0,
            "ended_at": at(p.start) if terminal else None,
            "throughput": None if speed is None else self.rate * speed,
            "gpus": []
            if util is None
            else [gpu_doc(util, self.power(p, t, util, rng) if tree else None)],
            "fixes": [dict(f, at=at(w)) for w, f in self.fixes if w <= t],
            "last_failure": failure,
            "knobs": {},
            "pid": 4242,
            "trainer_pid": None if terminal else 4243,
            **(self._tree(p, t - (t % HEARTBEAT_S)) if tree else {}),
        }

    def training_util(
        self, p: Phase, t: float, util: float | None, rng: random.Random
    ) -> float | None:
        """A training GPU's utilisation `util` at `t` as the run's slowdowns, starvation,
        readings and dips make it (a silent phase's stays as drawn)."""
        if p.mode not in OUTPUT_MODES or util is None:
            return util
        share = self.rate_share(t)
        if share < 1.0 and not self.step_keeps_util:
            util *= share
        util *= self.gpu_scale
        if self.gpu_reading is not None:
            util = self.gpu_reading(t, util, rng)
        for start, end, dip in self.dips:
            if start <= t < end:
                util *= dip
        return util

    def _dips_and_noise(self, t: float, speed: float | None) -> float | None:
        """A transient slowdown scales the rate while it lasts; `noise` scatters each reading
        of the rate around its value."""
        if speed is None:
            return speed
        for start, end, share in self.dips:
            if start <= t < end:
                speed *= share
        if self.noise:
            speed *= self.rng.uniform(1 - self.noise, 1 + self.noise)
        if self.scatter is not None:
            speed *= self.scatter(t, self.rng)
        return speed

    def power(self, p: Phase, t: float, util: float, rng: random.Random) -> float:
        low, high = POWER.get(p.mode, (0.08, 0.15))
        share = rng.uniform(low, high)
        if p.mode == "decay":
            share *= min(1.0, util / 85.0)
        if self.power_scale is not None and p.mode in OUTPUT_MODES:
            share *= self.power_scale(t, rng)
        return share

    def _tree(self, p: Phase, beat: float) -> dict[str, Any]:
        if p.status != "running":
            return {"activity": None, "last_activity_at": None}
        cpu, io = TREE.get(p.mode, (False, False))
        cpu_at = beat if cpu else p.cpu_base
        io_at = beat if io else p.io_base
        moments = [m for m in (cpu_at, io_at) if m is not None]
        activity = {
            "cpu_s": 1.0,
            "io_bytes": 1,
            "pids": 3,
            "at": at(beat),
            "last_cpu_at": None if cpu_at is None else at(cpu_at),
            "last_io_at": None if io_at is None else at(io_at),
        }
        return {"activity": activity, "last_activity_at": at(max(moments)) if moments else None}


def gpu_doc(util: float, power_share: float | None) -> dict[str, Any]:
    gpu = {"index": 0, "util_pct": util, "mem_used_mb": 61000.0, "mem_total_mb": 81920.0}
    if power_share is not None:  # NVML's power reading (an older supervisor has none)
        gpu.update(power_w=round(700.0 * power_share, 1), power_limit_w=700.0)
    return gpu


# share of the power limit each mode draws: a spinning collective reads 100 % utilisation at a
# fraction of the power (NVIDIA/nccl#968, horovod/horovod#3611), real work draws most of it
POWER = {
    "train": (0.7, 0.95),
    "decay": (0.7, 0.95),
    "eval": (0.5, 0.85),
    "eval_noio": (0.5, 0.85),
    "slow": (0.3, 0.5),
    "hung_busy": (0.1, 0.25),
}


def gpu_and_speed(mode: str, rng: random.Random) -> tuple[float | None, float | None]:
    """(GPU util %, throughput as a share of the run's normal rate) in each mode."""
    if mode == "train":
        return rng.uniform(85, 99), rng.uniform(0.9, 1.1)
    # silent modes keep the last training rate until the 120 s window empties (then None)
    if mode in ("eval", "eval_noio"):
        return rng.uniform(70, 95), rng.uniform(0.9, 1.1)
    if mode == "hung_busy":  # a spinning NCCL kernel reads as a busy GPU
        return rng.uniform(99, 100), rng.uniform(0.9, 1.1)
    if mode == "decay":
        return rng.uniform(85, 99), rng.uniform(0.95, 1.05)
    if mode in ("ckpt", "eval_cpu"):
        return rng.uniform(0, 5), rng.uniform(0.9, 1.1)
    if mode == "slow":
        return rng.uniform(30, 50), rng.uniform(0.2, 0.4)
    if mode == "hung":
        return rng.uniform(0, 3), rng.uniform(0.9, 1.1)
    if mode in ("startup", "compile"):
        return rng.uniform(0, 3), None
    return None, None  # retrying, terminal: no trainer


def make_run(index: int, seed: int) -> SimRun:
    """One seeded run of the fleet, its kind drawn by KIND_WEIGHTS."""
    rng = random.Random(f"{seed}:{index}")
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    run = SimRun(index, kind, rng.randrange(1 << 30), rate=rng.uniform(0.5, 5.0), rng=rng)
    run.eval_every_s = rng.uniform(*EVAL_EVERY_S)
    early = rng.random() < 0.3  # a third of crashes come in the first minutes (missing module)
    crash_at = rng.uniform(45, 300) if early else rng.uniform(600, 20 * 3600)
    if kind == "healthy":
        run.live(0, DAY_S, 1)
        run.finish(DAY_S, "done", "completed", 1)
        run.event_s = DAY_S
    elif kind in ("completed", "early_stop"):
        end = rng.uniform(3 * 3600, 23 * 3600)
        run.live(0, end, 1)
        run.finish(end, "done", "completed" if kind == "completed" else "early_stopped", 1)
        run.event_s = end
    elif kind == "crash_fixed":
        run.live(0, crash_at, 1)
        restart = run.fail_attempt(crash_at, 1, "missing_module", fix="missing_module")
        run.live(restart, DAY_S, 2)
        run.finish(DAY_S, "done", "completed", 2)
        run.event_s = crash_at
    elif kind == "crash_exhausted":
        t, attempt = crash_at, 1
        run.live(0, t, 1)
        while attempt < run.max_attempts:
            restart = run.fail_attempt(t, attempt, "error", fix=None)
            attempt += 1
            t = restart + rng.uniform(40, 90)
            run.live(restart, t, attempt)
        run.failures.append((t, {"attempt": attempt, "kind": "error", "exit_code": 1}))
        run.finish(t, "failed", "budget_exhausted", attempt)
        run.event_s = crash_at
    elif kind == "hang":
        hang_at = rng.uniform(1800, 22 * 3600)
        run.live(0, hang_at, 1)
        run.add(hang_at, FAR_S, "running", 1, "hung")
        run.event_s = hang_at
    else:  # collapse: throughput and GPU drop for good, the trainer keeps printing
        slow_at = rng.uniform(3600, 20 * 3600)
        run.live(0, slow_at, 1)
        run.live(slow_at, DAY_S, 1, "slow", boot=False)
        run.finish(DAY_S, "done", "completed", 1)
        run.event_s = slow_at
    return run
