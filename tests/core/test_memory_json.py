"""The run's memory as the store keeps it (core/memory.py): a sample is written with only its
fields off their defaults, and reads back equal, whatever it holds; rows written whole by an
older watcher still read. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields

from core.memory import Memory, Sample
from tests.core.builders import T0, at


def round_trip(memory: Memory) -> Memory:
    return Memory.from_json(json.loads(json.dumps(memory.to_json())))


FULL = Sample(
    at=at(5),
    reachable=True,
    status="running",
    attempt=2,
    step=1200,
    total_steps=90_000,
    last_output_at=at(4),
    gpu_util_pct=97.5,
    throughput=1.9,
    gpu_min_pct=91.0,
    gpu_min_index=3,
    tree_busy=False,
    explained_idle=True,
    busy_silent=True,
    gpu_work_w=512.5,
    gpu_slowed=True,
    past_print_gap=True,
    recent_util_pct=88.5,
    recent_work_w=490.0,
)


def test_every_field_of_a_sample_reads_back() -> None:
    defaults = [f for f in fields(Sample) if f.default is not MISSING]
    assert all(getattr(FULL, f.name) != f.default for f in defaults)  # a new field: set it
    memory = Memory(launched_at=T0, samples=(FULL, Sample(at=at(6), reachable=False)))
    assert round_trip(memory) == memory


def test_a_sample_is_written_with_only_what_is_off_its_default() -> None:
    (bare,) = Memory(launched_at=T0, samples=(Sample(at=at(6), reachable=False),)).to_json()[
        "samples"
    ]
    assert bare == {"at": at(6).isoformat(), "reachable": False}


def test_a_sample_written_whole_by_an_older_watcher_still_reads() -> None:
    doc = Memory(launched_at=T0).to_json()
    doc["samples"] = [
        {
            "at": at(6).isoformat(),
            "reachable": True,
            "status": "running",
            "attempt": 1,
            "step": None,
            "total_steps": None,
            "last_output_at": None,
            "gpu_util_pct": None,
            "throughput": 2.0,
            "gpu_min_pct": None,
            "gpu_min_index": None,
            "tree_busy": None,
            "explained_idle": False,
            "busy_silent": False,
        }
    ]
    (sample,) = Memory.from_json(json.loads(json.dumps(doc))).samples
    assert sample == Sample(at=at(6), reachable=True, status="running", attempt=1, throughput=2.0)
