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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DAY_S = 86400.0
FAR_S = 10 * DAY_S
T0 = datetime(2026, 11, 28, 0, 0, 0, tzinfo=UTC)
HEARTBEAT_S = 15.0
OUTPUT_EVERY_S = 10.0
STARTUP_S = 30.0
EVAL_EVERY_S = (1200.0, 7200.0)  # each run evaluates at its own period in this range
OUTPUT_MODES = frozenset({"train", "slow"})
THROUGHPUT_WINDOW_S = 120.0  # supervisor/progress.py: steps/s between step samples in 120 s

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


@dataclass(slots=True)
class SimRun:
    index: int
    kind: str
    seed: int
    rate: float = 2.0  # steps per second
    eval_every_s: float = 7200.0
    max_attempts: int = 3
    phases: list[Phase] = field(default_factory=list)
    event_s: float | None = None  # when the thing worth detecting happened
    ended_s: float | None = None
    failures: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    fixes: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)

    # -- building the timeline -------------------------------------------------------------

    def add(
        self, start: float, end: float, status: str, attempt: int, mode: str, slow: bool = False
    ) -> None:
        if end <= start:
            return
        out_base = None
        if self.phases:
            prev = self.phases[-1]
            out_base = prev.end if prev.mode in OUTPUT_MODES else prev.out_base
        self.phases.append(Phase(start, end, status, attempt, mode, out_base, degraded=slow))

    def live(
        self, start: float, end: float, attempt: int, mode: str = "train", *, boot: bool = True
    ) -> None:
        """The trainer of `attempt` from `start` to `end`, with periodic evals and checkpoints."""
        t = start
        if boot:
            self.add(t, min(end, t + STARTUP_S), "running", attempt, "startup")
            t = min(end, t + STARTUP_S)
        offset = self.seed % 1800
        every = self.eval_every_s
        first = (int((t - offset) // every) + 1) * every + offset
        ev = first
        while ev < end:
            self.add(t, ev, "running", attempt, mode)
            eval_end = min(end, ev + self.rng.uniform(300, 540))  # silent, GPU busy
            self.add(ev, eval_end, "running", attempt, "eval", mode == "slow")
            ckpt_start = min(end, eval_end + 20)  # prints the eval results
            self.add(eval_end, ckpt_start, "running", attempt, mode)
            ckpt_end = min(end, ckpt_start + self.rng.uniform(60, 180))  # silent, GPU idle
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
        """When `supervisor wait` returns with news: each status or attempt change, and the
        trainer silent for `quiet_s` while running (once per silence)."""
        times: list[float] = []
        for prev, cur in zip(self.phases, self.phases[1:], strict=False):
            if (prev.status, prev.attempt) != (cur.status, cur.attempt):
                times.append(cur.start)
        for p in self.phases:
            if p.status == "running" and p.mode not in OUTPUT_MODES:
                since = p.start if p.mode == "startup" else (p.out_base or p.start)
                if since + quiet_s < p.end:
                    times.append(since + quiet_s)
        return sorted(times)

    def state_doc(self, t: float) -> dict[str, Any]:
        """state.json at `t`, as the supervisor would have written it."""
        p = self.phase_at(t)
        rng = self.rng
        if p.mode in OUTPUT_MODES:
            out: float | None = max(p.start, t - ((t - p.start) % OUTPUT_EVERY_S))
        else:
            out = p.out_base
        util, speed = _gpu_and_speed(p.mode, rng)
        if p.degraded and speed is not None:
            speed *= 0.3
        if p.mode not in OUTPUT_MODES and (out is None or t - out > THROUGHPUT_WINDOW_S):
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
            "gpus": [] if util is None else [_gpu(util)],
            "fixes": [dict(f, at=at(w)) for w, f in self.fixes if w <= t],
            "last_failure": failure,
            "knobs": {},
            "pid": 4242,
            "trainer_pid": None if terminal else 4243,
        }


def _gpu(util: float) -> dict[str, Any]:
    return {"index": 0, "util_pct": util, "mem_used_mb": 61000.0, "mem_total_mb": 81920.0}


def _gpu_and_speed(mode: str, rng: random.Random) -> tuple[float | None, float | None]:
    """(GPU util %, throughput as a share of the run's normal rate) in each mode."""
    if mode == "train":
        return rng.uniform(85, 99), rng.uniform(0.9, 1.1)
    # silent modes keep the last training rate until the 120 s window empties (then None)
    if mode == "eval":
        return rng.uniform(70, 95), rng.uniform(0.9, 1.1)
    if mode == "ckpt":
        return rng.uniform(0, 5), rng.uniform(0.9, 1.1)
    if mode == "slow":
        return rng.uniform(30, 50), rng.uniform(0.2, 0.4)
    if mode == "hung":
        return rng.uniform(0, 3), rng.uniform(0.9, 1.1)
    if mode == "startup":
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
