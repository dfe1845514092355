"""The hard rules of `assess` (core.rules): the check's sample, a supervisor whose heartbeat
went stale, a silent trainer judged stalled (one recovery kill per attempt) or hung, a new
attempt (a retry), and a traceback in new log text. Each is a small pure function of the
probe, the run's memory and the thresholds; only core.rules.assess calls them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from statistics import median

from core.findings import Finding, Thresholds, age_s, silent_since
from core.gpu_work import recent_work, slowed, work_w
from core.memory import Memory, Sample
from core.protocol import ProbeSnapshot, SupervisorState
from core.silence import Silence, judge_silence, tree_busy, used_gpus
from core.vocab import Condition, Event

EXPLAINED_SILENCE_S = 120.0
PRINT_GAP_CHECKS = 4  # counted checks (unusual_silence_s) before a print gap is learned
PRINT_LATE_S = 30.0  # two heartbeats: a silence this short holds no more of the GPU's readings

ERROR_MARKERS = re.compile(
    r"Traceback \(most recent call last\)|^[\w.]*(Error|Exception): |CUDA error|"
    r"Segmentation fault|core dumped|NCCL (error|WARN .*timeout)",
    re.MULTILINE,
)
# every match of ERROR_MARKERS holds one of these: a log without any has none (a substring
# test is C's memchr; the pattern, tried at every position of a 1.6 KiB tqdm log, took 26 us)
_MARKER_WORDS = (
    "Traceback",
    "Error: ",
    "Exception: ",
    "CUDA error",
    "Segmentation fault",
    "core dumped",
    "NCCL ",
)


def error_marker(text: str) -> re.Match[str] | None:
    """The first ERROR_MARKERS match in `text` (the same as its search, sooner on clean logs)."""
    if not any(word in text for word in _MARKER_WORDS):
        return None
    return ERROR_MARKERS.search(text)


def sample_of(
    state: SupervisorState, probe: ProbeSnapshot, memory: Memory, t: Thresholds
) -> Sample:
    """What this check keeps of a readable state (memory.samples)."""
    gpu_util = mean_util(probe)
    used = [g for g in used_gpus(probe) if g.util_pct is not None]
    lowest = min(used, key=lambda g: g.util_pct or 0.0) if used else None
    low = None if lowest is None else (lowest.util_pct or 0.0)
    silent_s = age_s(probe.at, silent_since(state, memory))
    # a busy GPU after the window may be an eval: the window, not the print gap, says so (a
    # rare printer's eval read in its first minutes would otherwise end a low-GPU episode)
    quiet = silent_s is not None and silent_s >= explained_window_s(t)
    busy = tree_busy(state, probe, t)
    idle = low is not None and low < t.gpu_low_pct
    # the print gap, learned once, only where it is read (an idle GPU in a busy silence, or a
    # silence past PRINT_LATE_S): not every check's work
    learn = silent_s is not None and ((bool(busy) and idle) or silent_s > PRINT_LATE_S)
    gap = print_gap_s(memory, state.attempt, t) if learn else None
    unusual = bool(busy) and idle and silent_s is not None and silent_s >= silence_for(gap, t)
    recent = recent_work(state, used)
    return Sample(
        at=probe.at,
        reachable=True,
        status=state.status.value,
        attempt=state.attempt,
        step=state.step,
        total_steps=state.total_steps,
        last_output_at=state.last_output_at,
        gpu_util_pct=gpu_util,
        throughput=state.throughput,
        gpu_min_pct=None if lowest is None else lowest.util_pct,
        gpu_min_index=None if lowest is None or len(used) < 2 else lowest.index,
        tree_busy=busy,
        # silent while the tree computes or moves bytes: loading, compiling, saving
        explained_idle=unusual,
        busy_silent=quiet and low is not None and low >= t.gpu_low_pct,
        gpu_work_w=work_w(used),
        gpu_slowed=slowed(used),
        past_print_gap=past_print_gap(silent_s, gap, t),
        recent_util_pct=recent[0],
        recent_work_w=recent[1],
    )


def unusual_silence_s(memory: Memory, attempt: int, t: Thresholds) -> float:
    """How long this trainer must have been silent for an idle GPU to be explained (loading,
    compiling, saving): the explained-silence window, or the trainer's own print gap when it
    prints less often, at most half the stall threshold. A trainer that logs every 5 min is
    silent for minutes at most checks: its idle GPU is starved, not saving.

    The gap is learned from this attempt's kept checks that found a print newer than the
    check before (`_fresh_silences`): a recheck in the same silence (an eval's, a save's)
    says nothing of the gap, nor does a silence of the stall threshold (the wait channel wakes
    a check there). Silences at checks that land at random in the gap spread evenly over it:
    the gap is twice their median. The least of n silences x (n + 1) was used before: as
    likely, but one check just after a rare printer's print made it short (under half the
    true gap at 4 checks in 10 of the detection bench's rare printers; twice the median at 1
    in 15), and its starved silences read as saves.
    """
    return silence_for(print_gap_s(memory, attempt, t), t)


def silence_for(gap: float | None, t: Thresholds) -> float:
    """`unusual_silence_s` for a trainer whose print gap is `gap` (None: not learned yet)."""
    window = explained_window_s(t)
    return window if gap is None else min(t.stall_after_s / 2, max(window, gap))


def print_gap_s(memory: Memory, attempt: int, t: Thresholds) -> float | None:
    """The trainer's print gap (`unusual_silence_s`); None before PRINT_GAP_CHECKS checks."""
    gaps = [s for s in _fresh_silences(memory, attempt) if s < t.stall_after_s]
    return 2 * median(gaps) if len(gaps) >= PRINT_GAP_CHECKS else None


def past_print_gap(silent_s: float | None, gap: float | None, t: Thresholds) -> bool:
    """Silent for longer than `gap`, the trainer's print gap (`print_gap_s`; the explained-
    silence window while it is None, not learned), and at least PRINT_LATE_S: maybe a save's
    or an eval's first seconds, which the supervisor's recent GPU readings still count as
    training's (they cannot tell them from a late print yet). A check 42 s into a save that
    followed an eval read the save's first 4 idle readings as the GPU's work at the run's rate
    (2026-12-01, eighth session)."""
    if silent_s is None or silent_s <= PRINT_LATE_S:
        return False
    return silent_s > (explained_window_s(t) if gap is None else gap)


def _fresh_silences(memory: Memory, attempt: int) -> list[float]:
    """Seconds since the last print at each kept check of `attempt` whose print was newer than
    the previous check's and came from this attempt (after `attempt_seen_at`: the supervisor
    keeps the old attempt's last output until the new trainer prints)."""
    out, seen, kept = [], memory.attempt_seen_at, memory.samples
    # the oldest kept check's print may be an older check's: its silence is not known fresh
    for before, s in zip(kept, kept[1:], strict=False):
        printed = s.last_output_at
        if s.attempt == attempt and printed is not None and printed != before.last_output_at:
            if seen is None or printed >= seen:
                out.append((s.at - printed).total_seconds())
    return out


def explained_window_s(t: Thresholds) -> float:
    """The least silence that can explain an idle GPU, or mark a busy one as an eval's."""
    return min(EXPLAINED_SILENCE_S, t.stall_after_s / 5)


def heartbeat_streak(
    memory: Memory, state: SupervisorState, probe: ProbeSnapshot, t: Thresholds
) -> tuple[Memory, bool]:
    """Whether the supervisor's heartbeat is stale now, with the streak of stale checks."""
    stale = heartbeat_stale(state, probe, t)
    streak = memory.heartbeat_stale_streak + 1 if stale else 0
    if streak == memory.heartbeat_stale_streak:
        return memory, stale
    return replace(memory, heartbeat_stale_streak=streak), stale


@dataclass(frozen=True, slots=True)
class SilentTrainer:
    """The silent-trainer verdict of one check: its findings, the memory with a recovery kill
    recorded, the attempt to kill (if any), the stall reason and whether it is a hang."""

    memory: Memory
    findings: tuple[Finding, ...]
    silence: Silence
    kill: int | None
    stall: str | None
    hang: bool


def silent_trainer(
    memory: Memory,
    previous: tuple[Sample, ...],
    probe: ProbeSnapshot,
    state: SupervisorState,
    t: Thresholds,
) -> SilentTrainer:
    # Only an attempt already seen by an earlier check can be judged silent: a fresh attempt
    # still carries the previous attempt's last_output_at until its trainer prints.
    seen_before = any(s.attempt == state.attempt and s.reachable for s in previous)
    silence = (
        judge_silence(state, probe, silent_since(state, memory), t)
        if seen_before
        else Silence(None)
    )
    stall = silence.reason if silence.kind is Condition.STALL else None
    hang = silence.kind is Condition.HANG
    findings: list[Finding] = []
    kill: int | None = None
    if hang:
        findings.append(Finding(Condition.HANG, silence.reason, since=silent_since(state, memory)))
    if stall:
        if state.attempt not in memory.stall_kills and len(memory.stall_kills) < t.max_stall_kills:
            kill = state.attempt
            memory = replace(memory, stall_kills=(*memory.stall_kills, state.attempt))
            findings.append(
                Finding(
                    Event.STALL_KILL.key(state.attempt),
                    f"{stall}; killing attempt to retry",
                    event=True,
                )
            )
        else:
            findings.append(
                Finding(Condition.STALL, f"{stall}; already recovered once, needs a human")
            )
    return SilentTrainer(memory, tuple(findings), silence, kill, stall, hang)


def invalid_state(
    memory: Memory, probe: ProbeSnapshot, t: Thresholds, now: datetime
) -> Finding | None:
    error = probe.state_error or "state.json missing"
    young = (now - memory.launched_at).total_seconds() < t.heartbeat_stale_s
    if young and "missing" in error:
        return None  # the supervisor has not written its first state yet
    return Finding(Condition.INVALID_STATE, f"cannot read the supervisor's state: {error}")


def mean_util(probe: ProbeSnapshot) -> float | None:
    gpus = probe.gpus or (probe.state.gpus if probe.state else ())
    utils = [g.util_pct for g in gpus if g.util_pct is not None]
    return sum(utils) / len(utils) if utils else None


def heartbeat_stale(state: SupervisorState, probe: ProbeSnapshot, t: Thresholds) -> bool:
    age = age_s(probe.at, state.heartbeat_at or state.started_at)
    return age is not None and age > t.heartbeat_stale_s


def dead_reason(state: SupervisorState, probe: ProbeSnapshot) -> str:
    age = age_s(probe.at, state.heartbeat_at) or 0.0
    return f"supervisor dead: no heartbeat for {age:.0f}s (pid {state.pid})"


def retry_event(state: SupervisorState) -> Finding:
    failure = state.last_failure
    cause = f"{failure.label} (exit {failure.exit_code})" if failure else "unknown cause"
    fixes = [f for f in state.fixes if f.attempt == state.attempt - 1] or list(state.fixes[-1:])
    fix = f"; a fix was applied ({'ok' if fixes[-1].ok else 'failed'})" if fixes else ""
    reason = f"attempt {state.attempt}/{state.max_attempts} started after {cause}{fix}"
    quote = f"fix applied: {fixes[-1].action}" if fixes else None
    return Finding(Event.ATTEMPT.key(state.attempt), reason, event=True, quote=quote)


def traceback_event(probe: ProbeSnapshot, state: SupervisorState) -> Finding | None:
    if probe.log is None or not probe.log.text:
        return None
    match = error_marker(probe.log.text)
    if match is None:
        return None
    # the marker and the lines after it (the traceback), bounded: if the error is told after
    # its hold (core.rules), the log around it has long been read
    lines = probe.log.text[match.start() :].split("\n")[:HELD_ERROR_LINES]  # not at `\r`
    quote = "\n".join(line[:200] for line in lines)
    reason = "error marker in the log (quoted below)"
    return Finding(Event.TRACEBACK.key(state.attempt), reason, event=True, quote=quote)


HELD_ERROR_LINES = 15
