"""One simulated run under one watching policy: the real pure core driven by a simulated clock.

A check-driven event loop: the clock jumps to the next scheduled check or the next wake of the
wait channel, never second by second. Each check is decided by the watcher's own pure
`core.decide.decide` (what `core.watcher.Watcher.check` calls between its probe and its commit:
assess, the deadline, the provider's word, the alert diff, the next interval), its commit is
applied to the simulated run row and open alerts, and the decision is acted on as the watcher
and core/exits.py do (kill the attempt, finish and tear down by policy, tear down a live run).
The simulated runs have no deadline, no mute and no cloud provider (a preempted instance is
seen as unreachable only): those rules run, and stay silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.detection_model import DAY_S, HEALTHY_KINDS, SimRun, at
from bench.detection_recent import Reading, recent_doc
from core.decide import CheckDecision, CheckPolicy, decide
from core.exit_plan import should_destroy
from core.models import OpenAlert, RunRecord
from core.protocol import ProbeSnapshot, SupervisorState
from core.rules import Observation, Policy
from core.session_link import BEAT_GRACE_S, MISSED_BEATS
from core.supervisor_session import HEARTBEAT_S

EXEC_S = 1.0  # one SSH exec on a warm connection (probe, ctl)
WAKE_DELAY_S = (0.5, 2.0)  # supervisor wait's 0.5 s poll, its return, the 0.3 s debounce
BREAK_DELAY_S = (15.0, 120.0)  # the wait exec noticing a dead connection (SSH keepalives)
# A session idles the connection's keepalives (core/ssh_pool.py): its watcher notices a dead
# link when beats are missed, MISSED_BEATS x heartbeat + grace after the last line it heard,
# which came at most one heartbeat before the link died.
_SILENT_S = HEARTBEAT_S * MISSED_BEATS + BEAT_GRACE_S
SESSION_BREAK_DELAY_S = (_SILENT_S - HEARTBEAT_S, _SILENT_S)
WAIT_TIMEOUT_S = 300.0  # [watcher] wait_timeout: a wait with no news is re-exec'd this often
HORIZON_S = DAY_S + 3 * 3600
EXIT_ONLY_HUMAN_S = 8 * 3600.0  # a decorator's message at night is read in the morning
TRACEBACK = 'Traceback (most recent call last):\n  File "train.py", line 9\nRuntimeError: boom\n'


@dataclass(frozen=True, slots=True)
class Watching:
    name: str
    label: str
    fixed_s: float | None = None  # constant interval instead of the adaptive cadence
    channel: bool = False
    # the wait, the probes and ctl ride one `supervisor session` (issue 16): a request each, not
    # an exec; execs are its opening and a reopening after each dark period
    session: bool = False
    exit_only: bool = False
    tree: bool = True  # False: an older supervisor that writes no process-tree activity


POLICIES = (
    Watching("adaptive_wait", "sleepwatch: adaptive + session wait", channel=True, session=True),
    Watching(
        "adaptive_wait_no_tree",
        "sleepwatch, older supervisor (no process tree, no session: execs)",
        channel=True,
        tree=False,
    ),
    Watching("adaptive", "adaptive, no channel"),
    Watching("poll_5m", "fixed poll 5 min", fixed_s=300.0),
    Watching("poll_30m", "fixed poll 30 min", fixed_s=1800.0),
    Watching("exit_only", "notify on exit only", exit_only=True),
)


@dataclass(slots=True)
class Outcome:
    """What one run cost under one policy. Times are seconds from launch."""

    kind: str
    checks: int = 0
    messages: int = 0
    false_alerts: int = 0
    alert_keys: list[str] = field(default_factory=list)
    detected_s: float | None = None  # first message at or after the event
    alerted_s: float | None = None  # when that first reporting message went (from launch)
    alert_share: float | None = None  # a decay: the share of its own rate the run was at then
    # a slowdown (a decay, a step down): the run's time it had cost from its onset by then
    alert_cost_s: float | None = None
    alerts: int = 0  # messages other than the terminal one (one per episode is the goal)
    onset_s: float | None = None  # a gradual failure's start (a decay)
    event_s: float | None = None
    ended_s: float | None = None
    teardown_s: float | None = None
    idle_s: float | None = None  # paid GPU idle caused by the failure, until watching acted
    watched_s: float = 0.0
    kills: int = 0
    false_kills: int = 0  # kill-attempts on a trainer that was not hung with an idle GPU
    # every SSH exec: each check's probe, each `supervisor wait` (re-exec'd after each answer
    # and every WAIT_TIMEOUT_S of no news), each `ctl kill-attempt`, the end's ack; with a
    # session, those are session requests (a ctl too: core/supervisor_client.py) and the
    # execs open the session
    execs: int = 0
    session_requests: int = 0


def simulate(run: SimRun, watching: Watching, policy: Policy) -> Outcome:
    if watching.exit_only:
        return _exit_only(run)
    return _Loop(run, watching, policy).go()


class _Loop:
    def __init__(self, run: SimRun, watching: Watching, policy: Policy) -> None:
        self.run, self.watching, self.policy = run, watching, CheckPolicy(rules=policy)
        self.record = RunRecord(name="sim", run_dir="/sim", launched_at=at(0), status="launching")
        self.open: dict[str, OpenAlert] = {}
        self.out = Outcome(run.kind, event_s=run.event_s, onset_s=run.onset_s)
        self.quiet_s = policy.thresholds.stall_after_s
        self.wakes = self.wake_checks(0.0)
        self.last_check_s = 0.0
        self.recent: dict[float, Reading | None] = {}  # heartbeat -> its reading

    def go(self) -> Outcome:
        t = EXEC_S  # the first check right after launch
        woken = 0
        while t < HORIZON_S:
            interval = self.check(t)
            if interval is None:
                break
            wake = self.next_wake(t)
            woken += wake < t + interval
            t = min(t + interval, wake)
        self.out.ended_s = self.run.ended_s
        self.out.watched_s = min(self.out.teardown_s or HORIZON_S, HORIZON_S)
        waits = (
            woken + int(self.out.watched_s // WAIT_TIMEOUT_S) + 1 if self.watching.channel else 0
        )
        ack = 1 if self.out.teardown_s is not None or self.run.ended_s is not None else 0
        if self.watching.session:
            opens = 1 + sum(1 for a, _ in self.run.dark if a < self.out.watched_s)
            self.out.session_requests = self.out.checks + waits + ack + self.out.kills
            self.out.execs = opens
        else:
            self.out.execs = self.out.checks + waits + self.out.kills + ack
        if self.run.kind == "hang" and self.out.idle_s is None:
            self.out.idle_s = DAY_S - (self.run.event_s or 0.0)  # never caught: idle to the end
        return self.out

    def wake_checks(self, after_s: float) -> list[float]:
        """When the wait channel makes a check happen: each wake a moment after its event."""
        if not self.watching.channel:
            return []
        rng = self.run.rng
        events = self.run.wake_times(self.quiet_s)
        wakes = [w + rng.uniform(*WAKE_DELAY_S) for w in events if w > after_s]
        wakes = [w for w in wakes if not self.run.dark_at(w)]  # the channel is down too
        # ...and its exec failing wakes one check (core/waiter.py), after the SSH keepalive
        delay = SESSION_BREAK_DELAY_S if self.watching.session else BREAK_DELAY_S
        broke = [a + rng.uniform(*delay) for a, _ in self.run.dark if a > after_s]
        return sorted(wakes + broke)

    def next_wake(self, t: float) -> float:
        return next((w for w in self.wakes if w > t), HORIZON_S)

    def check(self, t: float) -> float | None:
        run = self.run
        self.out.checks += 1
        crashed_since = any(self.last_check_s < w <= t for w, _ in run.failures)
        self.last_check_s = t
        now = at(t)
        if run.dark_at(t):
            obs = Observation(at=now, error="connect timed out")
            return self.after(t, decide(self.record, obs, None, self.open, self.policy, now))
        doc = run.state_doc(t, tree=self.watching.tree)
        if self.watching.tree and doc["status"] == "running":  # a supervisor that reads power
            doc["gpu_recent"] = recent_doc(run, t, self.recent)
        state = SupervisorState.model_validate(doc)
        probe = ProbeSnapshot.model_validate(
            {
                "probe": 1,
                "at": at(t),
                "state": state,
                "gpus": state.gpus,
                "log": _log(state, crashed_since),
            }
        )
        obs = Observation(at=now, probe=probe)
        return self.after(t, decide(self.record, obs, None, self.open, self.policy, now))

    def after(self, t: float, d: CheckDecision) -> float | None:
        """Commit the decision to the simulated row and alerts, then act on it."""
        run, out = self.run, self.out
        self.record = d.record
        if d.told:  # what the alert message says (one message per episode)
            self.message(t, [f.key for f in d.told])
        if d.alerts.recovered and d.finish is None:
            self.message(t, [f"recovered:{k}" for k in d.alerts.recovered])
        self.apply(d, at(t))
        if d.kill_attempt is not None:
            out.kills += 1
            if run.phase_at(t).mode != "hung":
                out.false_kills += 1
            run.kill(t + 2 * EXEC_S)  # the probe, then `ctl kill-attempt`
            if run.kind == "hang" and out.idle_s is None:
                out.idle_s = t + 2 * EXEC_S - (run.event_s or 0.0)
            self.wakes = self.wake_checks(t)
        if d.finish is not None:
            status = d.finish.status.value
            if should_destroy(status, destroy_on_done=True, destroy_on_fail=True):
                out.teardown_s = t + EXEC_S
            self.message(t, [f"terminal:{status}"])
            return None
        if d.teardown is not None:  # a deadline or a lost instance: not simulated today
            out.teardown_s = t + EXEC_S
            self.message(t, [f"terminal:{d.teardown}"])
            return None
        if self.watching.fixed_s is not None:
            return self.watching.fixed_s
        return d.interval_s

    def message(self, t: float, keys: list[str]) -> None:
        out = self.out
        out.messages += 1
        out.alert_keys.extend(keys)
        terminal_only = all(k.startswith("terminal:") for k in keys)
        out.alerts += not terminal_only
        # a gradual failure (a decay) is already real from its onset: an alert during the
        # ramp is not false, and one before the threshold counts as caught at once
        onset = self.run.onset_s if self.run.onset_s is not None else out.event_s
        wrong_from = None if out.kind in HEALTHY_KINDS else onset
        if not terminal_only and (wrong_from is None or t < wrong_from):
            out.false_alerts += 1
        if out.detected_s is None and out.event_s is not None and onset is not None:
            if t >= onset and _detects(out.kind, keys):
                out.detected_s = max(0.0, t + EXEC_S - out.event_s)
                out.alerted_s = t + EXEC_S
                slowdown = self.run.decay is not None or self.run.step_down is not None
                out.alert_share = self.run.rate_share(t) if slowdown else None
                out.alert_cost_s = self.run.lost_s(onset, t + EXEC_S) if slowdown else None

    def apply(self, d: CheckDecision, now: datetime) -> None:
        """What the store does with the commit's alerts."""
        commit = d.commit
        for alert in commit.alerts_opened:
            self.open[alert.condition] = alert
        for key in commit.alerts_resent:
            old = self.open[key]
            self.open[key] = OpenAlert("sim", key, old.opened_at, now, old.message)
        for key in commit.alerts_resolved:
            self.open.pop(key, None)


def _detects(kind: str, keys: list[str]) -> bool:
    """Whether a message sent after the event reports it (a slowdown is not reported by the
    terminal message at the end of the day, a hang only by a stall or silence finding)."""
    names = {k.split(":")[0] for k in keys}
    if kind == "hang":
        return bool(names & {"stall_kill", "stall", "stale_output", "low_gpu"})
    if kind == "hang_busy":
        return bool(names & {"hang", "stall_kill", "stall", "stale_output"})
    if kind in ("collapse", "decay"):
        return bool(names & {"slow", "low_gpu"})
    if kind == "gpu_idle":
        return "low_gpu" in names
    if kind == "preempted":
        return bool(names & {"unreachable", "instance_lost"})
    return True


def _log(state: SupervisorState, crashed_since: bool) -> dict[str, Any] | None:
    """The probe's new log bytes: a traceback right after a crash, else a progress line."""
    text = TRACEBACK if crashed_since else f"step {state.step} loss 1.23\n"
    return {
        "attempt": state.attempt,
        "offset": 0,
        "next_offset": len(text),
        "size": len(text),
        "text": text,
    }


def _exit_only(run: SimRun) -> Outcome:
    """A decorator-style notifier in the trainer: one message as each attempt's process exits,
    nothing for a hang or a slowdown, no teardown (a human does it in the morning)."""
    out = Outcome(run.kind, event_s=run.event_s, ended_s=run.ended_s)
    exits = [w for w, _ in run.failures]
    if run.ended_s is not None and run.kind not in ("crash_exhausted",):
        exits.append(run.ended_s)
    out.messages = len(exits)
    if run.event_s is not None and run.kind not in (
        "hang",
        "hang_busy",
        "collapse",
        "decay",
        "preempted",
    ):
        out.detected_s = 0.0
    if run.kind == "hang":
        out.idle_s = DAY_S - (run.event_s or 0.0)
        out.watched_s = DAY_S
    else:
        out.teardown_s = (run.ended_s or DAY_S) + EXIT_ONLY_HUMAN_S
        out.watched_s = out.teardown_s
    return out
