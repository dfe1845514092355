"""The attempt loop: run, classify, fix, back off, retry; then the collect command if any
(supervisor.collectcmd), then the dead-man switch if armed.

Built by supervisor.__main__ (`run` in the foreground, `start` in the daemon) as the one
Supervisor of a run folder. Each attempt is watched by supervisor.attempt (through its
AttemptHost interface); failures are read by supervisor.verdict and fixed by supervisor.fixes;
its tick (supervisor.tick, the base class) reads ctl requests, beats the heartbeat and writes
state.json.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from . import collectcmd, control, deadman, fsutil, verdict
from .attempt import AttemptEnd, run_attempt
from .config import Config
from .fixes import apply_fix, plan_fix
from .gpu import read_gpu_report
from .gpurecent import RecentGpus
from .logread import attempt_log, tail_lines
from .proctree import ActivityTracker
from .progress import ProgressTracker
from .slog import Logger
from .state import RunState, StateFile
from .tick import Ticker
from .timeutil import iso_z, utcnow
from .trainer import trainer_env

Ending = Tuple[str, str]  # (status, outcome)
NO_FIX_NO_RETRY = ("missing_module", "missing_build_tool")
# Retried with backoff until the budget, and never "the same failure twice".
NOT_REPEATS = ("killed", "transient")


class Supervisor(Ticker):
    def __init__(
        self,
        config: Config,
        log: Logger,
        clock: Callable[[], Any] = utcnow,
        environ: Optional[Mapping[str, str]] = None,
        proc_environ: str = deadman.PROC1_ENVIRON,
        gpu_reader: Callable[[], Any] = read_gpu_report,
        daemon: bool = False,
        proc_root: str = "/proc",
    ) -> None:
        self.config, self.log, self.clock = config, log, clock
        self.environ = os.environ if environ is None else environ
        self.proc_environ, self.gpu_reader, self.daemon = proc_environ, gpu_reader, daemon
        self.state = RunState(run=config.run, max_attempts=config.max_attempts)
        self.state.knobs = {name: knob.value for name, knob in config.knobs.items()}
        self.state_file = StateFile(config.run_dir)
        self.progress: Optional[ProgressTracker] = None
        self.tick_s = min(0.5, config.heartbeat_s / 4)
        self.phase = "starting"
        self._dirty, self._last_write, self._next_beat = False, 0.0, 0.0
        self._stop_signal = False
        self._stop_request: Optional[Dict[str, Any]] = None
        self._kill_request: Optional[Dict[str, Any]] = None
        self._prev_signature: Optional[str] = None
        self._used_fixes: Set[str] = set()
        self.activity = ActivityTracker(proc_root)
        self.recent_gpus = RecentGpus()
        self._attempt_started = time.monotonic()
        self.dead_man = deadman.DeadManSwitch(
            config.deadman, config.run_dir, self.environ, proc_environ, log, clock
        )

    # -- lifecycle -------------------------------------------------------------------------

    def run(self, ready: Optional[Callable[[Dict[str, Any]], None]] = None) -> int:
        cfg = self.config
        fsutil.private_dir(cfg.run_dir)
        fsutil.private_dir(os.path.join(cfg.run_dir, "attempts"))
        lock_fd = control.acquire_lock(cfg.run_dir)
        if lock_fd is None:
            holder = control.lock_holder(cfg.run_dir)
            message = "a live supervisor (pid %s) already owns %s" % (holder, cfg.run_dir)
            if ready:
                ready({"ok": False, "message": message})
            self.log(message)
            return 3
        self._prepare()
        if ready:
            ready({"ok": True, "pid": os.getpid()})
        try:
            status, outcome = self._attempts()
        except Exception:
            self.log("supervisor error:\n" + traceback.format_exc())
            status, outcome = "failed", "unfixable"
        if cfg.collect is not None:  # written with the end: the watcher must wait for it
            self.state.collect = collectcmd.pending()
        self._finish(status, outcome)
        if cfg.collect is not None:  # failed and stopped runs collect too
            if self._stop_signal:
                collectcmd.not_run(self, "the supervisor was stopped by a signal")
            else:
                collectcmd.run_collect_command(self)
        if self._stop_signal:
            self.log("stopped by a signal: not waiting for a watcher's acknowledgement")
        else:
            self.dead_man.wait_after_end(self.tick, lambda: self._stop_signal)
        os.close(lock_fd)
        return 0 if status == "done" else 1

    def _prepare(self) -> None:
        for name in (control.CONTROL_FILE, control.REPLY_FILE):
            fsutil.remove_if_present(os.path.join(self.config.run_dir, name))
        self.dead_man.ack.clear_stale()
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN if self.daemon else self._on_stop_signal)
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)  # wakes; the tick reads ctl
        state = self.state
        state.pid, state.started_at, state.heartbeat_at = os.getpid(), self.clock(), self.clock()
        self._read_gpus()
        self.write_state()
        self._next_beat = time.monotonic() + self.config.heartbeat_s
        self.log("supervisor pid %d owns %s" % (os.getpid(), self.config.run_dir))
        if self.config.deadman.enabled:
            self.log("dead-man switch armed (api %s)" % self.config.deadman.api_base)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = True

    # -- the attempt loop ------------------------------------------------------------------

    def _attempts(self) -> Ending:
        for attempt in range(1, self.config.max_attempts + 1):
            if self.stopping:
                return "stopped", "killed"
            self.phase = "attempt"
            self._attempt_started = time.monotonic()
            self.progress = ProgressTracker(self.config.progress_regex)
            end = run_attempt(self, attempt, self.progress)
            self.phase = "between"
            ending = self._after_attempt(attempt, end)
            if ending is not None:
                return ending
        return "failed", "budget_exhausted"

    def _after_attempt(self, attempt: int, end: AttemptEnd) -> Optional[Ending]:
        """The run's ending after this attempt, or None to go on with the next one."""
        state = self.state
        if end.stopped:
            return "stopped", "killed"
        if end.policy_early_stop:
            return "done", "early_stopped"
        tail = tail_lines(attempt_log(self.config.run_dir, attempt), 80)
        if end.exit_code == 0 and not end.killed:
            outcome = verdict.clean_exit_outcome(tail, state.step, state.total_steps)
            if outcome == "ended_short":
                self.log(
                    "exit 0 at step %s of %s, no early-stop message: ended short"
                    % (state.step, state.total_steps)
                )
            return "done", outcome
        return self._after_failure(attempt, end, tail)

    def _after_failure(self, attempt: int, end: AttemptEnd, tail: List[str]) -> Optional[Ending]:
        """Classify a failed attempt, then end the run or fix (if a fix applies) and back off."""
        cfg, state = self.config, self.state
        failure = verdict.classify_attempt(
            cfg, end.exit_code, tail, end.killed, self._attempt_started
        )
        state.last_failure = failure.to_json(attempt)
        self.log("attempt %d failed: %s (exit %s)" % (attempt, failure.kind, end.exit_code))
        left = attempt < cfg.max_attempts
        if end.killed:
            self._answer_kill(
                True,
                "attempt %d killed (exit %s); %s"
                % (attempt, end.exit_code, "retrying" if left else "no attempts left"),
            )
        if failure.kind == "missing_module" and not failure.dist:
            self.log("module %r: no distribution it can trust, not installing" % failure.module)
            return "failed", "unfixable"
        plan = plan_fix(
            failure,
            cfg,
            self._used_fixes,
            state.knobs,
            os.geteuid() == 0,
            shutil.which("apt-get") is not None,
        )
        same = failure.signature == self._prev_signature and failure.kind not in NOT_REPEATS
        self._prev_signature = failure.signature
        if plan is None and (same or failure.kind in NO_FIX_NO_RETRY):
            return "failed", "unfixable"
        if not left:
            return "failed", "budget_exhausted"
        state.status = "retrying"
        self.write_state()
        if plan is not None:
            self._apply(plan, attempt)
        self.sleep(min(600.0, cfg.backoff_s * 2 ** (attempt - 1)))
        return ("stopped", "killed") if self.stopping else None

    def _apply(self, plan: Any, attempt: int) -> None:
        env = trainer_env(
            os.environ, self.config.env, self.state.knobs, attempt, self.config.run_dir
        )
        ok = apply_fix(plan, env, self.config.workdir, self.log)
        self._used_fixes.add(plan.kind)
        self.state.knobs.update(plan.knobs)
        self.state.fixes.append(
            {
                "attempt": attempt,
                "kind": plan.kind,
                "action": plan.action,
                "ok": ok,
                "at": iso_z(self.clock()),
            }
        )
        self.log("fix %s (%s): %s" % (plan.kind, plan.action, "ok" if ok else "FAILED"))
        self.write_state()

    def _finish(self, status: str, outcome: str) -> None:
        state = self.state
        state.status, state.outcome, state.ended_at = status, outcome, self.clock()
        state.trainer_pid, state.heartbeat_at = None, self.clock()
        self.write_state()
        self.phase = "terminal"
        self.log("run %s: %s / %s" % (state.run, status, outcome))
        if self._stop_request is not None:
            stopped = "run stopped at attempt %d" % state.attempt
            control.reply(self.config.run_dir, self._stop_request, True, stopped)
            self._stop_request = None
        self._answer_kill(False, "the run has ended (%s)" % status)
