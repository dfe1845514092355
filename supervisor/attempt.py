"""Watch one running attempt: start the trainer, feed its new log bytes to progress and the
early-stop policy, beat the heartbeat, obey ctl requests, and say how the attempt ended.

Called by supervisor.runner.Supervisor's attempt loop, once per attempt, through the small
AttemptHost interface below (it never reaches into the runner); the runner then classifies
the ending (supervisor.verdict) and decides whether to fix and retry.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from .config import Config
from .earlystop import EarlyStopPolicy
from .logread import attempt_log
from .metrics import MetricHistory
from .progress import ProgressTracker, metrics_in
from .state import RunState
from .trainer import Trainer, render_command, trainer_env

READ_CAP = 4 << 20  # progress only needs recent bytes: skip ahead when further behind
HEAD_CAP = 64 << 10  # ...but first look at the start of what was skipped


@dataclass
class AttemptEnd:
    exit_code: Optional[int]
    killed: bool = False  # ctl kill-attempt
    stopped: bool = False  # ctl stop / SIGTERM
    policy_early_stop: bool = False


class AttemptHost(Protocol):
    """What an attempt needs from the supervisor that runs it: the config, the shared RunState
    it updates, the log and clock, and the loop's beat and ctl requests."""

    config: Config
    state: RunState
    log: Callable[[str], None]
    clock: Callable[[], Any]

    def write_state(self) -> None: ...
    def mark_dirty(self) -> None: ...
    def tick(self) -> None: ...
    def take_stop_request(self) -> bool: ...
    def take_kill_request(self) -> bool: ...


def run_attempt(sup: AttemptHost, attempt: int, progress: ProgressTracker) -> AttemptEnd:
    """Run attempt number `attempt` to its end; `progress` (the runner's, read by its
    heartbeat for throughput) is fed the attempt's log."""
    cfg, state = sup.config, sup.state
    log_path = attempt_log(cfg.run_dir, attempt)
    command = render_command(cfg.command, state.knobs)
    env = trainer_env(os.environ, cfg.env, state.knobs, attempt, cfg.run_dir)
    sup.log("attempt %d/%d: starting %r" % (attempt, cfg.max_attempts, command))
    trainer = Trainer(command, env, cfg.workdir, log_path, cfg.kill_grace_s)
    state.status, state.attempt, state.trainer_pid = "running", attempt, trainer.pid
    sup.write_state()
    watch = _AttemptWatch(sup, log_path, progress)
    watch.history.attempt_started(attempt, state.step)
    try:
        return _watch(sup, trainer, watch, attempt)
    finally:
        watch.close()


def _watch(sup: AttemptHost, trainer: Trainer, watch: "_AttemptWatch", attempt: int) -> AttemptEnd:
    state = sup.state
    end = AttemptEnd(None)
    while True:
        code = trainer.poll()
        watch.read_new()
        if code is not None:
            end.exit_code = code
            break
        if not end.stopped and sup.take_stop_request():
            end.stopped = True
            trainer.terminate()
        if not (end.killed or end.stopped) and sup.take_kill_request():
            end.killed = True
            trainer.terminate()
        if watch.policy_says_stop() and not (end.killed or end.stopped):
            sup.log("attempt %d: early-stop policy fired at step %s" % (attempt, state.step))
            end.policy_early_stop = True
            trainer.terminate()
        sup.tick()
    trainer.finish()
    watch.read_new()
    state.trainer_pid = None
    sup.log("attempt %d ended with exit code %s" % (attempt, end.exit_code))
    return end


class _AttemptWatch:
    def __init__(self, sup: AttemptHost, log_path: str, progress: ProgressTracker) -> None:
        self.sup = sup
        self.fd = os.open(log_path, os.O_RDONLY)
        self.offset = 0
        self.progress = progress
        self.history = MetricHistory.load(sup.config.run_dir)
        spec = sup.config.early_stop
        self.policy = EarlyStopPolicy(spec) if spec else None

    def read_new(self) -> None:
        size = os.fstat(self.fd).st_size
        if size <= self.offset:
            return
        now = time.monotonic()
        if size - self.offset > READ_CAP:
            # Far behind (a flood of output between two reads): read the start of what is
            # new too, so a progress line printed just before the flood still counts, then
            # skip to the recent bytes. The tail wins if it has a step of its own.
            head = os.pread(self.fd, HEAD_CAP, self.offset)
            self._take(head, now)
            self.progress.restart_line()
            self.offset = size - READ_CAP
        chunk = os.pread(self.fd, size - self.offset, self.offset)
        self.offset += len(chunk)
        self._take(chunk, now)

    def _take(self, chunk: bytes, now: float) -> None:
        state = self.sup.state
        state.last_output_at = self.sup.clock()
        step_before = self.progress.step
        if self.progress.feed(chunk, now):
            state.step, state.total_steps = self.progress.step, self.progress.total
            state.last_step_at = state.last_output_at
            state.throughput = self.progress.throughput(now)
            self.history.throughput(state.step, state.throughput)
            self.sup.mark_dirty()
        self.history.feed(chunk, step_before, self.progress.user)
        self.history.save_if_due(now)
        if self.policy is not None:
            for value in metrics_in(chunk, self.policy.pattern):
                self.policy.observe(value)

    def policy_says_stop(self) -> bool:
        return self.policy is not None and self.policy.should_stop(self.sup.state.step)

    def close(self) -> None:
        os.close(self.fd)
        self.history.save(time.monotonic())
