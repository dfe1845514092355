"""Training progress from raw log bytes: step, total, throughput, and early-stop metrics.

Parsers are pure; `ProgressTracker` keeps the little state they need between log chunks.

Fed by supervisor.attempt with each new chunk of the attempt's log; the runner's heartbeat reads
its throughput.
"""

from __future__ import annotations

import collections
import re
from typing import Deque, List, Optional, Pattern, Tuple

# tqdm / HF Trainer / accelerate / Lightning's tqdm bar all print "450/1000 [" (Lightning:
# "Epoch 3: ... 450/1000 ["). Lightning's rich bar and Keras print "Epoch 3/50" (Lightning
# counts epochs from 0, to max_epochs - 1); plain loops print "step N/M" or "epoch N/M".
TQDM = re.compile(rb"(\d+)/(\d+) \[")
PLAIN_STEP = re.compile(rb"(?i)\b(?:global[_ ])?step\b\s*[:=]?\s*(\d+)(?:\s*/\s*(\d+))?")
EPOCH = re.compile(rb"(?i)\bepoch\s*[:=]?\s*(\d+)\s*/\s*(\d+)")
SEGMENT_SPLIT = re.compile(rb"[\r\n]")
SCAN_BYTES = 256 << 10
# tqdm draws a nested bar (position >= 1: the HF Trainer's evaluation bar) and then moves the
# cursor back up with ESC[A; evaluation, validation and test bars are not training progress.
NESTED_BAR = b"\x1b[A"
# Nor are the bars of data and file work (`datasets`' "Map:", transformers' "Writing model
# shards:", "Loading checkpoint shards:", hub downloads), whatever their totals.
NOT_TRAINING = re.compile(
    rb"(?i)^\s*(?:validation|validating|evaluat\w*|eval\b|testing|test\b|predicting"
    rb"|sanity checking|(?-i:[\w.]*(?:Error|Exception|Warning)\b)"
    rb"|(?:map|filter|writing|loading|downloading|download|generating|tokeniz\w*|running "
    rb"tokenizer|fetching|saving|uploading|extracting|resolving|casting)\b[^|:]{0,60}:)"
)

Step = Tuple[int, Optional[int]]


def match_step(segment: bytes, user: Optional[Pattern[bytes]] = None) -> Optional[Step]:
    """(step, total or None) from one line or carriage-return segment, or None."""
    if user is not None:
        found = user.search(segment)
        return _from_user_match(found) if found else None
    if not _training(segment):
        return None
    found = TQDM.search(segment)
    if found:
        return int(found.group(1)), int(found.group(2))
    found = PLAIN_STEP.search(segment)
    if found:
        total = found.group(2)
        return int(found.group(1)), int(total) if total else None
    found = EPOCH.search(segment)
    if found:
        return int(found.group(1)), int(found.group(2))
    return None


def _training(segment: bytes) -> bool:
    return NESTED_BAR not in segment and not NOT_TRAINING.match(segment)


def _from_user_match(found: "re.Match[bytes]") -> Optional[Step]:
    names = found.re.groupindex
    step = found.group("step") if "step" in names else found.group(1) if found.re.groups else None
    if step is None:
        return None
    total = found.group("total") if "total" in names else None
    if total is None and "step" not in names and found.re.groups >= 2:
        total = found.group(2)
    try:
        return int(step), int(total) if total else None
    except ValueError:
        return None


def last_step(chunk: bytes, user: Optional[Pattern[bytes]] = None) -> Optional[Step]:
    """The most recent step in a chunk: scan segments from the end, stop at the first hit."""
    for segment in reversed(SEGMENT_SPLIT.split(chunk)):
        if segment:
            hit = match_step(segment, user)
            if hit is not None:
                return hit
    return None


def steps_in(chunk: bytes, user: Optional[Pattern[bytes]] = None) -> List[Step]:
    return [hit for seg in SEGMENT_SPLIT.split(chunk) if (hit := match_step(seg, user))]


def metrics_in(chunk: bytes, pattern: Pattern[bytes]) -> List[float]:
    values = []
    for found in pattern.finditer(chunk):
        raw = found.group("value") if "value" in pattern.groupindex else found.group(1)
        try:
            values.append(float(raw))
        except (TypeError, ValueError):
            continue
    return values


def _recent(complete: bytes) -> bytes:
    """The last SCAN_BYTES of whole lines: enough for the newest progress, bounded."""
    if len(complete) <= SCAN_BYTES:
        return complete
    recent = complete[-SCAN_BYTES:]
    cut = SEGMENT_SPLIT.search(recent)
    return recent[cut.end() :] if cut else b""


# any "N/M" (a bar, "step N/M", "epoch N/M", and whatever else prints a fraction): the largest
# total a chunk could hold, for the flood path of ProgressTracker.feed
_ANY_TOTAL = re.compile(rb"\d+\s*/\s*(\d+)")
FLOOD_SEGMENTS = 64
# a trainer that moves its step less often than the throughput window (it prints every few
# minutes) is read over its last RARE_RECORDS moves (ProgressTracker._rare_throughput)
RARE_RECORDS = 3
RARE_SPREAD = 3.0  # its two gaps within this ratio: a trainer printing up to 50 % late
RARE_STALE = 2.0  # no move for this many gaps: a silence (an eval, a save, a hang)


def _flood_hits(complete: bytes, total: Optional[int]) -> Optional[List[Step]]:
    """A flood's hits in one pass, or None (read every hit): the newest hit alone, when it
    names a total no smaller than the one kept and no fraction anywhere in the chunk has a
    larger total. Then every hit before it is superseded by it, whatever those hits were."""
    last = last_step(complete)
    if last is None or last[1] is None or last[1] < (total or 0):
        return None
    totals = _ANY_TOTAL.findall(complete)
    return None if totals and max(map(int, totals)) > last[1] else [last]


def _tqdm_hit(segment: bytes) -> Optional[Step]:
    if not _training(segment.rsplit(b"\r", 1)[-1]):
        return None
    matches = list(TQDM.finditer(segment))
    return (int(matches[-1].group(1)), int(matches[-1].group(2))) if matches else None


class ProgressTracker:
    """Feeds on new log bytes. Keeps the main bar: an eval bar with a smaller total than the
    training bar already seen is ignored, so evaluation does not look like a step regression."""

    def __init__(self, user_regex: Optional[str] = None, window_s: float = 120.0) -> None:
        self.user = re.compile(user_regex.encode()) if user_regex else None
        self.window_s = window_s
        self.step: Optional[int] = None
        self.total: Optional[int] = None
        self._samples: Deque[Tuple[float, int]] = collections.deque()
        # the last RARE_RECORDS step moves whatever their age: a trainer that prints its step
        # less often than the window has no two in it
        self._moves: Deque[Tuple[float, int]] = collections.deque(maxlen=RARE_RECORDS)
        self._tail = b""

    def restart_line(self) -> None:
        """The next bytes do not follow the last ones (a skip): drop the half line kept."""
        self._tail = b""

    def feed(self, chunk: bytes, now: float) -> bool:
        """Consume new bytes seen at monotonic time `now`; True when the step moved."""
        data = self._tail + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))
        # The bytes after the last line break may be half a line: keep them for the next chunk.
        self._tail = data[cut + 1 :][-4096:] if cut >= 0 else data[-4096:]
        complete = data[: cut + 1] if cut >= 0 else b""
        hits = self._hits(_recent(complete)) if complete else []
        # A tqdm bar is redrawn after "\r" and stays unterminated until the next redraw; its
        # " [" suffix proves the numbers before it are whole, so the open tail may count.
        open_hit = _tqdm_hit(self._tail) if self.user is None else None
        if open_hit is not None:
            hits.append(open_hit)
        # Every hit in order, so a small bar drawn after the training bar in the same chunk
        # (a save or eval bar) is seen as smaller than the total already read, and skipped.
        step = None
        for hit_step, total in hits:
            if total is not None and self.total is not None and total < self.total:
                continue
            if total is not None:
                self.total = total
            step = hit_step
        return False if step is None else self.record(step, now)

    def _hits(self, complete: bytes) -> List[Step]:
        # at 1,000 lines a second, matching every line was most of the supervisor's CPU
        if self.user is None and complete.count(b"\n") + complete.count(b"\r") > FLOOD_SEGMENTS:
            flood = _flood_hits(complete, self.total)
            if flood is not None:
                return flood
        return steps_in(complete, self.user)

    def record(self, step: int, now: float) -> bool:
        """The step read at monotonic time `now` (each line `feed` parses); True when it moved."""
        if step == self.step:
            return False
        if self.step is not None and step < self.step:
            self._samples.clear()
            self._moves.clear()
        self.step = step
        self._samples.append((now, step))
        self._moves.append((now, step))
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        return True

    def throughput(self, now: float) -> Optional[float]:
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        if len(self._samples) >= 2 and now - self._samples[-1][0] <= self.window_s:
            return _rate(self._samples[0], self._samples[-1])
        return self._rare_throughput(now)

    def _rare_throughput(self, now: float) -> Optional[float]:
        """With fewer than two moves in the window (a trainer that prints every few minutes,
        or one silent in an eval, a save, a hang): the rate over its last RARE_RECORDS moves,
        while their two gaps are alike (neither held an eval or a save: a trainer back from
        one is not slow) and the newest move is younger than RARE_STALE x the longer gap.
        Else None: the step has not moved for longer than the trainer's own gap."""
        if len(self._moves) < RARE_RECORDS:
            return None
        (ta, _), (tb, _), (tc, _) = self._moves
        short, long = sorted((tb - ta, tc - tb))
        if short <= 0 or long > RARE_SPREAD * short:
            return None
        if now - tc > RARE_STALE * long:
            return None
        return _rate(self._moves[0], self._moves[-1])


def _rate(first: Tuple[float, int], last: Tuple[float, int]) -> Optional[float]:
    (t0, s0), (t1, s1) = first, last
    if t1 <= t0 or s1 < s0:
        return None
    return (s1 - s0) / (t1 - t0)
