"""Watch one running attempt: feed its new log bytes to progress, heartbeat, obey control."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from .earlystop import EarlyStopPolicy
from .logread import attempt_log
from .progress import ProgressTracker, metrics_in
from .trainer import Trainer, render_command, trainer_env

if TYPE_CHECKING:
    from .runner import Supervisor

READ_CAP = 4 << 20  # progress only needs recent bytes: skip ahead when further behind
HEAD_CAP = 64 << 10  # ...but first look at the start of what was skipped


@dataclass
class AttemptEnd:
    exit_code: Optional[int]
    killed: bool = False  # ctl kill-attempt
    stopped: bool = False  # ctl stop / SIGTERM
    policy_early_stop: bool = False


def run_attempt(sup: "Supervisor", attempt: int) -> AttemptEnd:
    cfg, state = sup.config, sup.state
    log_path = attempt_log(cfg.run_dir, attempt)
    command = render_command(cfg.command, state.knobs)
    env = trainer_env(os.environ, cfg.env, state.knobs, attempt, cfg.run_dir)
    sup.log("attempt %d/%d: starting %r" % (attempt, cfg.max_attempts, command))
    trainer = Trainer(command, env, cfg.workdir, log_path, cfg.kill_grace_s)
    state.status, state.attempt, state.trainer_pid = "running", attempt, trainer.pid
    sup.write_state()
    watch = _AttemptWatch(sup, log_path)
    try:
        return _watch(sup, trainer, watch, attempt)
    finally:
        watch.close()


def _watch(sup: "Supervisor", trainer: Trainer, watch: "_AttemptWatch", attempt: int) -> AttemptEnd:
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
    def __init__(self, sup: "Supervisor", log_path: str) -> None:
        self.sup = sup
        self.fd = os.open(log_path, os.O_RDONLY)
        self.offset = 0
        self.progress = ProgressTracker(sup.config.progress_regex)
        spec = sup.config.early_stop
        self.policy = EarlyStopPolicy(spec) if spec else None
        sup.progress = self.progress

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
        if self.progress.feed(chunk, now):
            state.step, state.total_steps = self.progress.step, self.progress.total
            state.last_step_at = state.last_output_at
            state.throughput = self.progress.throughput(now)
            self.sup.mark_dirty()
        if self.policy is not None:
            for value in metrics_in(chunk, self.policy.pattern):
                self.policy.observe(value)

    def policy_says_stop(self) -> bool:
        return self.policy is not None and self.policy.should_stop(self.sup.state.step)

    def close(self) -> None:
        os.close(self.fd)
