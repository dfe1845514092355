"""The soft signals (stale output, an idle GPU, throughput under the run's own: the last
lives in core/throughput.py): they alert only after holding for `soft_checks` checks and
`soft_hold_s`, and a missing reading is no news. Pure.

Called by core.rules.assess for a live run when no hard rule (stale supervisor, stall, hang)
fired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from core.findings import Finding, Thresholds, age_s, held_for, silent_since, soft_held
from core.gpu_onset import ONSET_READINGS, gpu_suspect, low_onset, sagging
from core.memory import Memory, Sample, in_silence, lowest_util
from core.protocol import ProbeSnapshot, SupervisorState
from core.throughput import slow, suspect_slow
from core.vocab import Condition, RunStatus

SoftRule = Callable[
    [SupervisorState, ProbeSnapshot, tuple[Sample, ...], Sample, Memory, Thresholds],
    Finding | None,
]


def _soft(
    key: Condition, reason: str, count: int, since: datetime | None, now: datetime, t: Thresholds
) -> Finding | None:
    return Finding(key, reason, soft=True, since=since) if soft_held(count, since, now, t) else None


def stale_output(
    state: SupervisorState,
    probe: ProbeSnapshot,
    previous: tuple[Sample, ...],
    sample: Sample,
    memory: Memory,
    t: Thresholds,
) -> Finding | None:
    """Silence worth a word: after `soft_hold_s` when the trainer's tree cannot be read
    (today's rule); after `silent_alert_s` in any case. Where the tree can be read, the stall
    and hang rules judge the silence: a tree that computes or moves bytes is loading,
    compiling or saving, not stuck."""
    age = age_s(probe.at, silent_since(state, memory))
    if state.status is not RunStatus.RUNNING or age is None or age < t.soft_hold_s:
        return None
    same = [s for s in previous[-1:] if s.attempt == sample.attempt and s.step == sample.step]
    if not same or same[0].last_output_at != sample.last_output_at:
        return None
    if age < t.silent_alert_s and sample.tree_busy is not None:
        return None  # the tree can be read: the stall and hang rules judge this silence
    busy = " although its processes are busy" if sample.tree_busy else ""
    return Finding(
        Condition.STALE_OUTPUT, f"no new step or output for {age / 60:.0f} min{busy}", soft=True
    )


def low_gpu(
    state: SupervisorState,
    probe: ProbeSnapshot,
    previous: tuple[Sample, ...],
    sample: Sample,
    memory: Memory,
    t: Thresholds,
) -> Finding | None:
    """Judged per GPU: the least busy GPU of those the run uses, so one idle rank of eight is
    seen. A silent trainer whose tree is busy (loading, saving) explains an idle GPU, once
    the silence is longer than its own print gap (core.hard_rules.unusual_silence_s). A GPU
    that idles while the run's rate sagged under the slow line is a slowdown: the `slow` rule
    judges it by what it costs (a slow phase that comes back is no news). Once told, the
    episode (`memory.low_gpu_since`) lasts until the GPU holds busy for `soft_hold_s` and
    `soft_checks` checks taken while the trainer printed (`Sample.busy_silent`: a busy reading
    in a silence is no news): low readings a cruise interval apart, or an eval's busy minutes in
    an input-bound run, neither end it nor start another (that run was told "recovered" and
    told again about every hour; with 15-40 min evals, 26 times a day)."""
    low = lowest_util(sample)
    if state.status is not RunStatus.RUNNING or low is None:
        return None
    under = f"under {t.gpu_low_pct:.0f}%"
    same_attempt = bool(previous) and previous[-1].attempt == sample.attempt
    if memory.low_gpu_since is not None and same_attempt:
        if _no_news(sample, memory) or _gpu_back(memory, sample, t):
            return None  # a silence is no news (core.soft_rules.unjudged keeps the alert)
        which = _which(sample)
        reason = f"GPU utilisation {low:.0f}%{which} ({under}) while training"
        if low >= t.gpu_low_pct:
            reason = f"GPU utilisation {under}{which} while training ({low:.0f}% at this check)"
        return Finding(Condition.LOW_GPU, reason, soft=True, since=memory.low_gpu_since)
    if sample.explained_idle or sagging(sample, memory, t) or low >= t.gpu_low_pct:
        return None
    onset = low_onset(sample, memory, t)
    if onset.score < ONSET_READINGS or onset.since is None:
        return None
    if (probe.at - onset.since).total_seconds() < t.soft_hold_s:
        return None
    reason = f"GPU utilisation {low:.0f}%{_which(sample)} ({under}) while training"
    return Finding(Condition.LOW_GPU, reason, soft=True, since=onset.since)


def _which(sample: Sample) -> str:
    return "" if sample.gpu_min_index is None else f" on GPU {sample.gpu_min_index}"


def _gpu_back(memory: Memory, sample: Sample, t: Thresholds) -> bool:
    """The least busy GPU has held at or above `gpu_low_pct` for `soft_hold_s` and
    ONSET_READINGS checks (`memory.samples` hold this check's; two were a starved GPU's chance
    pair of busy reads, and a bursty run was told again up to 13 times a day), busy readings
    in a silence skipped (an eval's), unless every kept reading of the attempt is one: a
    trainer that prints less often than it is checked would keep its episode open for good."""
    # an open episode's readings in a silence are skipped; not an onset's (core/gpu_onset.py):
    # a trainer that prints every few minutes is silent at most checks
    samples = _silence_back(memory.samples, in_silence)
    skip = _skips(samples, sample.attempt)
    count, since = held_for(
        samples,
        lambda s: (
            None
            if skip(s) or lowest_util(s) is None
            else s.attempt == sample.attempt and (lowest_util(s) or 0.0) >= t.gpu_low_pct
        ),
        max_gap_s=float("inf"),
    )
    return count >= ONSET_READINGS and soft_held(count, since, sample.at, t)


def _explained(sample: Sample) -> bool:
    return sample.explained_idle


def _skips(samples: tuple[Sample, ...], attempt: int) -> Callable[[Sample], bool]:
    """Which readings an open episode skips: those in a silence (`in_silence`), unless every kept
    reading of the attempt is one and the trainer printed twice between them (three
    silences, not one long eval): then only the explained idle ones."""
    mine = [s for s in samples if s.attempt == attempt and lowest_util(s) is not None]
    if any(not in_silence(s) for s in mine) or len({s.last_output_at for s in mine}) < 3:
        return in_silence
    return _explained


def _no_news(sample: Sample, memory: Memory) -> bool:
    """This check's GPU reading says nothing of an open episode (`memory.samples` hold it)."""
    if memory.low_gpu_since is None:
        return in_silence(sample)
    return _skips(_silence_back(memory.samples, in_silence), sample.attempt)(sample)


def gpu_recovering(sample: Sample, memory: Memory, t: Thresholds) -> bool:
    """An open low-GPU episode (`memory` as this check left it) whose reading is busy: looked at
    again within soft_hold_s, so the recovery is confirmed or refuted while it lasts. At the
    cruise tick, a run that evaluates about as often kept landing in its evals: two busy
    readings half an hour apart read as a GPU back, and the episode closed and reopened."""
    lowest = lowest_util(sample)
    if memory.low_gpu_since is None or lowest is None or sample.explained_idle:
        return False
    # a busy reading in a silence too: the cruise tick can keep landing in evals that come
    # about as often, and a trainer that prints no more often reads the same
    return lowest >= t.gpu_low_pct


def remember_low_gpu(memory: Memory, found: tuple[Finding, ...], sample: Sample) -> Memory:
    """Keep the open low-GPU episode's start for the next check. A check with no GPU reading,
    or one taken in a silence, changes nothing unless the rule told it: no news is no
    recovery."""
    since = next((f.since for f in found if f.key == Condition.LOW_GPU), None)
    # a retry's first reading sits in the old attempt's silence: it still ends the episode
    retried = len(memory.samples) > 1 and memory.samples[-2].attempt != sample.attempt
    if since is None and not retried and (lowest_util(sample) is None or _no_news(sample, memory)):
        return memory
    return memory if since == memory.low_gpu_since else replace(memory, low_gpu_since=since)


def _silence_back(
    samples: tuple[Sample, ...], unread: Callable[[Sample], bool]
) -> tuple[Sample, ...]:
    """A reading taken early in a silence that a later reading shows went on (same attempt,
    same last output) is the silence's too: a check that lands in the first minute of a
    checkpoint write is not an idle GPU while training, nor one in an eval's first minute a
    busy one."""
    out = list(samples)
    for i in range(len(out) - 2, -1, -1):
        s, later = out[i], out[i + 1]
        same = (s.attempt, s.last_output_at) == (later.attempt, later.last_output_at)
        if unread(later) and same and not unread(s):
            out[i] = replace(s, busy_silent=later.busy_silent, explained_idle=later.explained_idle)
    return tuple(out)


def unjudged(state: SupervisorState, sample: Sample, memory: Memory) -> frozenset[str]:
    """No reading is no news: a missing GPU or throughput reading neither opens nor closes,
    nor does a GPU reading taken in a silence (busy in an eval, idle while saving)."""
    if state.status is not RunStatus.RUNNING:
        return frozenset()
    missing = set()
    if lowest_util(sample) is None or _no_news(sample, memory):
        missing.add(Condition.LOW_GPU)
    if sample.throughput is None or memory.baseline_throughput is None:
        missing.add(Condition.SLOW)
    return frozenset(missing)


def suspect(state: SupervisorState, sample: Sample, memory: Memory, t: Thresholds) -> bool:
    if state.status is not RunStatus.RUNNING:
        return False
    return gpu_suspect(state, sample, memory, t) or suspect_slow(sample, memory, t)


SOFT_SETTLE_S = 900.0  # under MAX_SAMPLES alert-mode checks, or an episode never looks old


def keeps_alert_mode(finding: Finding, memory: Memory) -> bool:
    """Alert mode (3-minute checks) is for what is new or hard. A soft episode that has been
    reported and has held for SOFT_SETTLE_S is steady: the cadence calms down again (its alert
    stays open and is re-sent after resend_after_s)."""
    if finding.event:
        return False
    settles = finding.soft or finding.key == Condition.HANG  # a hang is reported loud, then steady
    if not settles or finding.since is None or not memory.samples:
        return True
    return (memory.samples[-1].at - finding.since).total_seconds() < SOFT_SETTLE_S


SOFT_RULES: tuple[SoftRule, ...] = (stale_output, low_gpu, slow)
