"""The low-GPU rule's onset, pure: how far a run's kept readings have come towards a low-GPU
episode (`low_onset`), and how soon a check whose onset is under way is looked at again.
Called by core.soft_rules (`low_gpu`, `suspect`) and core.rules (the recheck)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.findings import Thresholds, age_s
from core.hard_rules import explained_window_s, unusual_silence_s
from core.memory import Memory, Sample, in_silence, lowest_util
from core.protocol import SupervisorState
from core.vocab import RunStatus

ONSET_READINGS = 4  # low readings, net of busy ones, that an episode's onset needs
# what a busy reading takes back from an onset: about the log-odds of a busy reading over a
# low one's, for a starved GPU that reads busy at one read in five against a healthy one that
# reads idle at one in twelve (ln(0.2/0.92) / ln(0.8/0.08))
BUSY_SETBACK = 0.65
EXPLAINED_CREDIT = 0.5  # what an explained idle reading (a save's, a load's?) adds


@dataclass(frozen=True, slots=True)
class Onset:
    score: float = 0.0  # low readings less BUSY_SETBACK for each busy one, never under 0
    since: datetime | None = None  # the first low reading of the streak
    newest_read: bool = False  # this check's reading counted (not skipped as an eval's, ...)


# one check asks for its onset up to four times (low_gpu, suspect, the recheck): the newest
# answer is kept with the very objects it was computed from, so a hit cannot be stale
_newest: tuple[Sample, Memory, Thresholds, Onset] | None = None


def low_onset(sample: Sample, memory: Memory, t: Thresholds) -> Onset:
    """`_low_onset`, computed once for the same sample, memory and thresholds."""
    global _newest
    newest = _newest
    if newest is not None and newest[0] is sample and newest[1] is memory and newest[2] is t:
        return newest[3]
    onset = _low_onset(sample, memory, t)
    _newest = (sample, memory, t, onset)
    return onset


def _low_onset(sample: Sample, memory: Memory, t: Thresholds) -> Onset:
    """How far the kept readings of this attempt (`memory.samples` hold this check's) have come
    towards a low-GPU episode: each low reading adds 1, a busy one takes back BUSY_SETBACK,
    a streak that falls to 0 or has a gap over 2 x soft_hold_s starts afresh. Two low readings
    in a row were enough before: a healthy run whose read lands on host-side work one check in
    twenty was told on a day in five. A starved GPU that a read finds computing a batch now and
    then still gets there. Skipped: a sagging reading (the `slow` rule's), a busy one in a
    silence longer than this trainer's print gap (an eval's). Low readings taken in one silence
    (longer than the explained window) count once: a save or a load is one silence however
    often it is read, while a starved trainer that prints every few minutes is idle in each of
    its silences. Explained idle readings (idle in a busy silence longer than the trainer's
    print gap) count half (EXPLAINED_CREDIT): that print gap, learned from a few checks, is
    often too short for a rare printer, whose starved silences then read as saves; a run that
    saves for 5-15 min after each eval is idle in most of its silences too."""
    score, since, last, read = 0.0, None, None, False
    gap = unusual_silence_s(memory, sample.attempt, t)
    counted: object = _NONE  # the silence (last print) of the newest low reading
    for s in memory.samples:
        low = lowest_util(s)
        read = False
        if s.attempt != sample.attempt or s.status != RunStatus.RUNNING or low is None:
            continue
        if sagging(s, memory, t) or _in_eval(s, low, gap, t):
            continue
        if _quiet(s, t) and s.last_output_at == counted:
            continue  # a silence's low readings count once: a save, a load is one silence
        read = True
        if last is not None and (s.at - last).total_seconds() > 2 * t.soft_hold_s:
            score, since = 0.0, None
        last = s.at
        if low < t.gpu_low_pct:
            score += EXPLAINED_CREDIT if _explained(s, gap) else 1.0
            since, counted = since or s.at, s.last_output_at
        else:
            score = max(0.0, score - BUSY_SETBACK)
            since = since if score >= 1 else None  # the episode begins at its next low reading
    return Onset(score, since, read)


_NONE = object()


def _quiet(sample: Sample, t: Thresholds) -> bool:
    silent_s = age_s(sample.at, sample.last_output_at)
    return silent_s is None or silent_s >= explained_window_s(t)


def _explained(sample: Sample, gap_s: float) -> bool:
    """An idle reading explained when it was taken (a busy silence longer than the print gap
    learned by then) and still by the gap learned since: a rare printer's first readings are
    judged on the explained window, before its gap is known."""
    silent_s = age_s(sample.at, sample.last_output_at)
    if not sample.explained_idle or silent_s is None:
        return sample.explained_idle
    return silent_s >= gap_s


def _in_eval(sample: Sample, low: float, gap_s: float, t: Thresholds) -> bool:
    """A busy reading in a silence longer than the trainer's print gap: an eval's, no news of
    its GPU while training. A rare printer's busy readings in its usual silences count."""
    silent_s = age_s(sample.at, sample.last_output_at)
    if low < t.gpu_low_pct or not sample.busy_silent or silent_s is None:
        return False
    return silent_s >= gap_s


def onset_interval_s(t: Thresholds) -> float:
    """How soon a check whose onset is under way is looked at again: ONSET_READINGS readings
    fit in the hold."""
    return t.soft_hold_s / (ONSET_READINGS - 1)


def onset_recheck_s(
    state: SupervisorState, sample: Sample, memory: Memory, t: Thresholds
) -> float | None:
    """`onset_interval_s` (or the trainer's print gap when longer: a silence's low readings
    count once, so the next that can count is in its next silence) while an onset is under
    way and this check's reading counted, or while an open episode reads busy as the trainer
    prints (its end needs ONSET_READINGS busy readings in a row, core.soft_rules._gpu_back),
    else None. The watcher's next check comes within it (core.rules.next_check_s). A busy
    reading in a silence (an eval's) of an onset a low reading's worth on is looked at again
    at twice that: every 200 s through a 40-min eval would fill the kept samples with its
    silence, and at the hold a 5-9 min eval cost a starved run's onset 10 min."""
    live = state.status is RunStatus.RUNNING
    if memory.low_gpu_since is None:
        if not gpu_suspect(state, sample, memory, t, read=True):
            if live and sample.busy_silent and low_onset(sample, memory, t).score >= 1:
                return 2 * onset_interval_s(t)
            return None
        # never past the hold: a gap of twice it between counted readings restarts the onset
        gap = unusual_silence_s(memory, sample.attempt, t)
        return min(t.soft_hold_s, max(onset_interval_s(t), gap))
    low = lowest_util(sample)
    busy = low is not None and low >= t.gpu_low_pct
    printing = not in_silence(sample)
    return onset_interval_s(t) if busy and printing and live else None


def sagging(sample: Sample, memory: Memory, t: Thresholds) -> bool:
    """The reading's rate is under the slow line of the run's own (the `slow` rule's to judge)."""
    base, rate = memory.baseline_throughput, sample.throughput
    return base is not None and rate is not None and rate < base * t.throughput_drop


def gpu_suspect(
    state: SupervisorState, sample: Sample, memory: Memory, t: Thresholds, *, read: bool = False
) -> bool:
    """A low-GPU onset is under way (`low_onset`): looked at again within the hold. With `read`,
    only when this check's reading counted and is not explained (a save's, a load's): then
    every `onset_interval_s`, so the onset's readings are taken within the hold and a chance
    reading is cleared. A reading skipped (an eval's) is not (`onset_recheck_s` says when):
    every 200 s through a 40-min eval would fill the kept samples with the eval and push out
    the low reading the onset began with; nor can a save's next reading add to it (its
    silence counts once)."""
    if state.status is not RunStatus.RUNNING or memory.low_gpu_since is not None:
        return False  # an open episode's own recheck is gpu_recovering's
    onset = low_onset(sample, memory, t)
    fresh = onset.newest_read and not sample.explained_idle
    return onset.score > 0 and (fresh or not read)
