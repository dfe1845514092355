"""What the watcher remembers of a run between checks: the pure core's only state.

Stored by the store as an opaque JSON document in the run row, so a restarted watcher picks up
exactly where it stopped (streaks, baselines, which attempts it already killed).

Advanced by core.rules.assess (through core.decide) at each check and committed with it; read by
core.control for /status.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from core.cadence import Cadence, Phase

MAX_SAMPLES = 8
MAX_ANNOUNCED = 32
OLD_ROW = 100  # readings counted for a baseline stored before they were counted
MAX_DIPS = 8  # the newest recovered throughput dips kept (core/throughput.py)


@dataclass(frozen=True, slots=True)
class Sample:
    """One check as the rules need it later. `at` is the instance's clock when reachable (the
    probe's `at`): staleness compares instance timestamps with each other, never across clocks."""

    at: datetime
    reachable: bool
    status: str | None = None
    attempt: int = 0
    step: int | None = None
    total_steps: int | None = None  # for /runs' projected cost
    last_output_at: datetime | None = None
    gpu_util_pct: float | None = None
    throughput: float | None = None
    gpu_min_pct: float | None = None  # the least busy of the GPUs the run uses
    gpu_min_index: int | None = None  # which one, when the run uses several
    tree_busy: bool | None = None  # the trainer's tree moved CPU or I/O lately; None: unknown
    # silent with a busy tree for longer than the trainer's own print gap (at least 2 min): an
    # idle GPU is loading or saving
    explained_idle: bool = False
    # silent for the explained-silence window with the GPU busy: an eval (or a hang, the silence
    # rules' to judge); it says nothing of the GPU while training
    busy_silent: bool = False
    gpu_work_w: float | None = None  # the least draw above idle of its GPUs (core/gpu_work.py)
    gpu_slowed: bool = False  # one of them said it was throttled (core/gpu_work.py)
    # silent past the trainer's print gap: maybe a silence's first seconds (core/hard_rules.py)
    past_print_gap: bool = False
    # the least busy GPU's utilisation and the least draw above idle as the medians of the
    # supervisor's training readings of the last minutes (`SupervisorState.gpu_recent`): None
    # from an older supervisor, or with too few of them
    recent_util_pct: float | None = None
    recent_work_w: float | None = None


def lowest_util(sample: Sample) -> float | None:
    """The least busy of the run's GPUs: its median over the supervisor's recent training
    readings where there is one, else this check's reading (a sample stored by an older
    watcher has only the mean)."""
    if sample.recent_util_pct is not None:
        return sample.recent_util_pct
    return sample.gpu_min_pct if sample.gpu_min_pct is not None else sample.gpu_util_pct


def in_silence(sample: Sample) -> bool:
    """Taken in a silence with the GPU busy (an eval) or explained idle (a save, a load): the
    reading says nothing of the GPU while training."""
    return sample.busy_silent or sample.explained_idle


@dataclass(frozen=True, slots=True)
class Memory:
    launched_at: datetime
    samples: tuple[Sample, ...] = ()
    attempt_seen: int = 0
    attempt_seen_at: datetime | None = None  # probe time of the first check that saw it
    baseline_throughput: float | None = None
    baseline_readings: int = 0  # readings that set it (core/throughput.py FIRST_READINGS)
    unreachable_streak: int = 0
    heartbeat_stale_streak: int = 0
    stall_kills: tuple[int, ...] = ()
    cadence: Cadence = field(default_factory=Cadence)
    deadline_warned_for: datetime | None = None  # the deadline the hour-ahead warning was for
    announced: tuple[str, ...] = ()  # event keys already notified, newest last
    instance_gone_checks: int = 0  # checks in a row: SSH failed and the provider said gone/lost
    cost_warned_for: float | None = None  # the max_cost limit the hour-ahead warning was for
    # An error marker in a live attempt, not told yet: if the attempt dies of it, the retry or
    # the end tells it (one message per episode); if the trainer runs on, it is told later.
    held_error_key: str | None = None  # e.g. `traceback:2`
    held_error_quote: str | None = None  # the marker's line
    held_error_at: datetime | None = None  # the watcher's `now` at the check that saw it
    # An open slow-throughput episode's first reading (core/throughput.py): it holds until the
    # rate is back near the run's own, so a decay sliding in and out of the line is one episode
    slow_since: datetime | None = None
    # This run's own throughput dips (core/throughput.py): the first reading under the slow line
    # of a dip not yet recovered, and how long the newest recovered ones lasted (seconds, from
    # that first reading to the first reading back at the recovered line)
    dip_since: datetime | None = None
    dip_after: datetime | None = None  # the last reading at the run's rate before that one
    dips_s: tuple[float, ...] = ()
    # The sag this attempt's rate is in (core/throughput.py): its first reading under the
    # recovered line and the run's time it has cost since (seconds at the run's own rate);
    # and this attempt's newest reading, the next one's interval starts there
    sag_since: datetime | None = None
    sag_lost_s: float = 0.0
    read_at: datetime | None = None
    read_rate: float | None = None
    sags_lost_s: tuple[float, ...] = ()  # the newest recovered sags: the most each may have cost
    # the open sag's level: the mean of its readings under the slow line, and how many
    sag_rate: float | None = None
    sag_readings: int = 0
    low_gpu_since: datetime | None = None  # an open low-GPU episode's start (core/soft_rules.py)
    # the GPU's work at the run's rate (core/gpu_work.py): the least busy GPU's utilisation and
    # the least draw above idle, over the readings that set baseline_throughput (or, after
    # heavier steps became the run's rate, the medians of theirs)
    work_util_pct: float | None = None
    work_w: float | None = None
    # the newest sag taken for heavier steps (/runs): its first reading (the instance's clock),
    # the rate before it and the rate it became; cleared once the rate is back near the first
    heavier_at: datetime | None = None
    heavier_from: float | None = None
    heavier_to: float | None = None

    def with_sample(self, sample: Sample) -> Memory:
        return replace(self, samples=(*self.samples, sample)[-MAX_SAMPLES:])

    def to_json(self, known: Stored | None = None) -> dict[str, Any]:
        """The document stored for this memory; the samples it shares with `known` (the memory
        the check started from) reuse their documents there: only the new sample is encoded."""
        doc = _shallow(self, _MEMORY_FIELDS)  # not asdict: its deep copies cost every check
        doc["launched_at"] = self.launched_at.isoformat()
        doc["attempt_seen_at"] = _iso(self.attempt_seen_at)
        encoded = known.sample_docs() if known is not None else {}
        doc["samples"] = [encoded.get(id(s)) or _sample_to_json(s) for s in self.samples]
        doc["cadence"] = {
            "phase": self.cadence.phase.value,
            "early_index": self.cadence.early_index,
            "healthy_streak": self.cadence.healthy_streak,
        }
        doc["stall_kills"] = list(self.stall_kills)
        doc["announced"] = list(self.announced)
        doc["deadline_warned_for"] = _iso(self.deadline_warned_for)
        doc["held_error_at"] = _iso(self.held_error_at)
        doc["slow_since"] = _iso(self.slow_since)
        doc["dip_since"] = _iso(self.dip_since)
        doc["dip_after"] = _iso(self.dip_after)
        doc["dips_s"] = list(self.dips_s)
        doc["sag_since"] = _iso(self.sag_since)
        doc["read_at"] = _iso(self.read_at)
        doc["sags_lost_s"] = list(self.sags_lost_s)
        doc["low_gpu_since"] = _iso(self.low_gpu_since)
        doc["heavier_at"] = _iso(self.heavier_at)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Memory:
        cadence = doc.get("cadence") or {}
        base = doc.get("baseline_throughput")
        return cls(
            launched_at=datetime.fromisoformat(doc["launched_at"]),
            samples=tuple(_sample_from_json(s) for s in doc.get("samples", ())),
            attempt_seen=int(doc.get("attempt_seen", 0)),
            attempt_seen_at=_parse(doc.get("attempt_seen_at")),
            baseline_throughput=base,
            # a row stored before readings were counted has an established baseline
            baseline_readings=int(doc.get("baseline_readings", 0 if base is None else OLD_ROW)),
            unreachable_streak=int(doc.get("unreachable_streak", 0)),
            heartbeat_stale_streak=int(doc.get("heartbeat_stale_streak", 0)),
            stall_kills=tuple(int(a) for a in doc.get("stall_kills", ())),
            cadence=Cadence(
                phase=Phase(cadence.get("phase", Phase.EARLY.value)),
                early_index=int(cadence.get("early_index", 0)),
                healthy_streak=int(cadence.get("healthy_streak", 0)),
            ),
            deadline_warned_for=_parse(doc.get("deadline_warned_for")),
            announced=tuple(str(k) for k in doc.get("announced", ())),
            instance_gone_checks=int(doc.get("instance_gone_checks", 0)),
            cost_warned_for=_float_or_none(doc.get("cost_warned_for")),
            held_error_key=_text(doc.get("held_error_key")),
            held_error_quote=_text(doc.get("held_error_quote")),
            held_error_at=_parse(doc.get("held_error_at")),
            slow_since=_parse(doc.get("slow_since")),
            # rows stored before dips were followed have neither key
            dip_since=_parse(doc.get("dip_since")),
            dip_after=_parse(doc.get("dip_after")),
            dips_s=tuple(float(d) for d in doc.get("dips_s", ()))[-MAX_DIPS:],
            # nor has a row stored before sags were costed
            sag_since=_parse(doc.get("sag_since")),
            sag_lost_s=float(doc.get("sag_lost_s", 0.0)),
            read_at=_parse(doc.get("read_at")),
            read_rate=_float_or_none(doc.get("read_rate")),
            sags_lost_s=tuple(float(d) for d in doc.get("sags_lost_s", ()))[-MAX_DIPS:],
            sag_rate=_float_or_none(doc.get("sag_rate")),
            sag_readings=int(doc.get("sag_readings", 0)),
            low_gpu_since=_parse(doc.get("low_gpu_since")),
            work_util_pct=_float_or_none(doc.get("work_util_pct")),
            work_w=_float_or_none(doc.get("work_w")),
            heavier_at=_parse(doc.get("heavier_at")),
            heavier_from=_float_or_none(doc.get("heavier_from")),
            heavier_to=_float_or_none(doc.get("heavier_to")),
        )


@dataclass(frozen=True, slots=True)
class Stored:
    """A memory and the document it was stored as. The next check of the run, given it, skips
    decoding when the store still holds that document, and encodes only what changed: decoding
    and encoding the memory were a fifth of a check's pure work at 5,000 runs."""

    memory: Memory
    doc: dict[str, Any]

    def decode(self, doc: dict[str, Any]) -> Memory:
        """`doc` (the run row's) as a Memory: this one when it is the document stored (equal
        content: the store hands back a fresh copy), else decoded."""
        if doc is self.doc or doc == self.doc:
            return self.memory
        return Memory.from_json(doc)

    def sample_docs(self) -> dict[int, dict[str, Any]]:
        return {id(s): d for s, d in zip(self.memory.samples, self.doc["samples"], strict=True)}


def stored(memory: Memory, known: Stored | None = None) -> Stored:
    return Stored(memory, memory.to_json(known))


_MEMORY_FIELDS = tuple(f.name for f in fields(Memory))
# last_output_at is a datetime: written as ISO text by _sample_to_json itself
_SAMPLE_DEFAULTS = tuple(
    (f.name, f.default)
    for f in fields(Sample)
    if f.default is not MISSING and f.name != "last_output_at"
)


def _shallow(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(value, name) for name in names}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _sample_to_json(sample: Sample) -> dict[str, Any]:
    """Only the fields off their default (_sample_from_json's defaults are the same): a run's
    memory is encoded and decoded at every check, and most of a sample is None."""
    doc: dict[str, Any] = {"at": sample.at.isoformat(), "reachable": sample.reachable}
    for name, default in _SAMPLE_DEFAULTS:
        value = getattr(sample, name)
        if value != default:
            doc[name] = value
    if sample.last_output_at is not None:
        doc["last_output_at"] = sample.last_output_at.isoformat()
    return doc


def _sample_from_json(doc: dict[str, Any]) -> Sample:
    return Sample(
        at=datetime.fromisoformat(doc["at"]),
        reachable=bool(doc["reachable"]),
        status=doc.get("status"),
        attempt=int(doc.get("attempt", 0)),
        step=doc.get("step"),
        total_steps=doc.get("total_steps"),
        last_output_at=_parse(doc.get("last_output_at")),
        gpu_util_pct=doc.get("gpu_util_pct"),
        throughput=doc.get("throughput"),
        gpu_min_pct=doc.get("gpu_min_pct"),
        gpu_min_index=doc.get("gpu_min_index"),
        tree_busy=doc.get("tree_busy"),
        explained_idle=bool(doc.get("explained_idle", False)),
        busy_silent=bool(doc.get("busy_silent", False)),
        gpu_work_w=_float_or_none(doc.get("gpu_work_w")),
        gpu_slowed=bool(doc.get("gpu_slowed", False)),
        past_print_gap=bool(doc.get("past_print_gap", False)),
        recent_util_pct=_float_or_none(doc.get("recent_util_pct")),
        recent_work_w=_float_or_none(doc.get("recent_work_w")),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
