"""decide given the memory the run's last check stored (`known`, what Watcher keeps between
checks) decides exactly as decide decoding the run row's memory: the memo is a saving, never a
change. Checked on every check of simulated runs of many kinds, each decided both ways."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any

import pytest

import bench.detection_sim as sim
from bench import detection
from bench.detection_families import FAMILIES, make_family_run
from bench.detection_sim import POLICIES, simulate
from core.decide import CheckDecision, decide
from core.memory import Memory, Sample, Stored
from core.models import RunRecord
from core.store_rows import to_json

KINDS = (
    "slow_startup",
    "long_checkpoints",
    "busy_gpu_hang",
    "preempted",
    "unreachable_periods",
    "noisy_slow_decay",
    "throughput_dips",
    "input_bound_retry",
    "frequent_saves_throttle",
)


def same_typed(a: object, b: object) -> bool:
    """Equal, and of the same types field by field (a decoded 3.0 where the rules held 3 would
    print differently in a status line)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Memory | Sample):
        return all(same_typed(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, tuple):
        assert isinstance(b, tuple)
        return len(a) == len(b) and all(map(same_typed, a, b))
    return a == b


@pytest.mark.parametrize("family", KINDS)
def test_decide_with_the_known_memory_decides_as_decoding_the_row(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert family in {f.name for f in FAMILIES}
    known: list[Stored | None] = [None]
    checks = [0]

    decoded = [0]
    real_from_json = Memory.from_json.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Memory], doc: dict[str, Any]) -> Memory:
        decoded[0] += 1
        return real_from_json(cls, doc)  # type: ignore[no-any-return]

    def both(record: RunRecord, *args: Any) -> CheckDecision:
        plain = decide(record, *args)
        # the row as the store hands it back: a fresh copy through the stored JSON text
        row = replace(record, memory=json.loads(to_json(record.memory)))
        decoded[0] = 0
        with monkeypatch.context() as patched:
            patched.setattr(Memory, "from_json", classmethod(counted))
            memo = decide(row, *args, known[0])
        assert decoded[0] == (0 if known[0] else int(bool(record.memory)))
        assert memo.commit == plain.commit and memo.interval_s == plain.interval_s
        assert memo.kill_attempt == plain.kill_attempt and memo.teardown == plain.teardown
        assert same_typed(Memory.from_json(memo.stored.doc), memo.stored.memory)
        known[0] = memo.stored
        checks[0] += 1
        return plain

    monkeypatch.setattr(sim, "decide", both)
    watching = next(w for w in POLICIES if w.name == "adaptive_wait")
    for index in range(2):
        simulate(make_family_run(family, index, 11), watching, detection.bench_policy())
    assert checks[0] > 50


def test_a_row_changed_under_the_memo_is_decoded_afresh() -> None:
    from datetime import UTC, datetime

    start = datetime(2026, 1, 1, tzinfo=UTC)
    old = Memory(launched_at=start, unreachable_streak=2)
    known = Stored(old, old.to_json())
    assert known.decode(old.to_json()) is old  # a fresh copy of the stored document
    relaunched = Memory(launched_at=start, unreachable_streak=0).to_json()
    assert known.decode(relaunched) == Memory(launched_at=start)
