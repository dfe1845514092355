"""Values for tests of the pure core: states and probes built as the supervisor writes them
(JSON through `parse_probe`, so every test also exercises the contract), observations and
memories, and a fixed clock origin. No I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from core.decide import CheckDecision, CheckPolicy, decide
from core.findings import Thresholds
from core.memory import Memory
from core.models import OpenAlert, RunRecord
from core.protocol import ProbeSnapshot, SupervisorState, parse_probe, parse_state
from core.rules import Assessment, Observation, Policy, assess

T0 = datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)
RUN = "llama-ft"
# the slow rule without its cost gate (`slow_lost_s` 0): the hold, the dips and the recovery
# alone, for the tests of those; tests/core/test_throughput_cost.py tests the gate
HELD_ONLY = Policy(thresholds=Thresholds(slow_lost_s=0.0))


def at(minutes: float = 0.0, seconds: float = 0.0) -> datetime:
    """T0 plus an offset: the injected `now` of every test."""
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gpu(
    util_pct: float | None,
    mem_used_mb: float | None = None,
    mem_total_mb: float | None = None,
    index: int = 0,
) -> dict[str, Any]:
    return {
        "index": index,
        "util_pct": util_pct,
        "mem_used_mb": mem_used_mb,
        "mem_total_mb": mem_total_mb,
    }


def fix(
    attempt: int, kind: str, action: str, *, ok: bool = True, when: datetime = T0
) -> dict[str, Any]:
    return {"attempt": attempt, "kind": kind, "action": action, "ok": ok, "at": iso(when)}


def failure(
    attempt: int, kind: str, exit_code: int | None = 1, excerpt: str = ""
) -> dict[str, Any]:
    return {"attempt": attempt, "kind": kind, "exit_code": exit_code, "excerpt": excerpt}


def state_doc(**overrides: Any) -> dict[str, Any]:
    """A schema-1 state.json document: a healthy attempt 1 started at T0. Datetime values in
    `overrides` are written as the supervisor writes them (ISO-8601, `Z`)."""
    doc: dict[str, Any] = {
        "schema": 1,
        "run": RUN,
        "status": "running",
        "outcome": None,
        "attempt": 1,
        "max_attempts": 3,
        "step": None,
        "total_steps": None,
        "last_step_at": None,
        "last_output_at": None,
        "heartbeat_at": iso(T0),
        "started_at": iso(T0),
        "ended_at": None,
        "throughput": None,
        "gpus": [],
        "fixes": [],
        "last_failure": None,
        "knobs": {},
        "pid": 4242,
        "trainer_pid": 4243,
    }
    for key, value in overrides.items():
        doc[key] = iso(value) if isinstance(value, datetime) else value
    return doc


def tree(last_active: datetime, *, cpu: bool = True, io: bool = True) -> dict[str, Any]:
    """state.json overrides for the trainer's process tree, last busy at `last_active` (as
    supervisor/proctree.py writes them); `cpu`/`io` False: that counter could not be read."""
    activity = {
        "cpu_s": 12.5 if cpu else None,
        "io_bytes": 4096 if io else None,
        "pids": 3,
        "at": iso(last_active),
        "last_cpu_at": iso(last_active) if cpu else None,
        "last_io_at": iso(last_active) if io else None,
    }
    return {"activity": activity, "last_activity_at": last_active}


IDLE_TREE = tree(T0)  # a tree that has not moved since T0: nothing explains a silence


def make_state(**overrides: Any) -> SupervisorState:
    return parse_state(state_doc(**overrides))


def probe_doc(
    when: datetime,
    state: dict[str, Any] | None,
    *,
    state_error: str | None = None,
    log_text: str | None = None,
    log_attempt: int | None = None,
    tail: Sequence[str] = (),
    gpus: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    log = None
    if log_text is not None:
        size = len(log_text.encode())
        attempt = log_attempt or (state or {}).get("attempt") or 1
        log = {"attempt": attempt, "offset": 0, "next_offset": size, "size": size, "text": log_text}
    return {
        "probe": 1,
        "at": iso(when),
        "state": state,
        "state_error": state_error,
        "log": log,
        "tail": list(tail),
        "gpus": list(gpus),
        "disk_free_mb": 51200.0,
    }


def make_probe(when: datetime, state: dict[str, Any] | None, **kwargs: Any) -> ProbeSnapshot:
    return parse_probe(json.dumps(probe_doc(when, state, **kwargs)))


def running(
    when: datetime,
    *,
    attempt: int = 1,
    step: int | None = 100,
    output_at: datetime | None = None,
    heartbeat_at: datetime | None = None,
    util_pct: float | None = 95.0,
    throughput: float | None = None,
    log_text: str | None = None,
    gpus: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> Observation:
    """One check of a live attempt at `when`: fresh heartbeat and output unless told otherwise,
    the GPU reading from the probe (an empty list when `util_pct` is None: no GPU readable;
    `gpus` gives every GPU's reading instead)."""
    doc = state_doc(
        attempt=attempt,
        step=step,
        last_output_at=output_at or when,
        heartbeat_at=heartbeat_at or when,
        throughput=throughput,
        **overrides,
    )
    if gpus is None:
        gpus = [] if util_pct is None else [gpu(util_pct, 40000, 81920)]
    return Observation(at=when, probe=make_probe(when, doc, gpus=gpus, log_text=log_text))


def with_state(when: datetime, **overrides: Any) -> Observation:
    return Observation(at=when, probe=make_probe(when, state_doc(**overrides)))


def unreachable(when: datetime, error: str = "gpu-1:22: connection refused") -> Observation:
    return Observation(at=when, error=error)


def fresh_memory(launched_at: datetime = T0) -> Memory:
    return Memory(launched_at=launched_at)


def run_checks(
    observations: Iterable[Observation],
    *,
    policy: Policy | None = None,
    memory: Memory | None = None,
) -> list[Assessment]:
    """Feed checks in order, threading the memory as the watcher does; returns every verdict."""
    policy = policy or Policy()
    memory = memory or fresh_memory()
    results = []
    for obs in observations:
        result = assess(memory, obs, policy, obs.at)
        memory = result.memory
        results.append(result)
    return results


def keys(result: Assessment) -> set[str]:
    return {f.key for f in result.findings}


def decide_checks(
    observations: Iterable[Observation], record: RunRecord, policy: CheckPolicy | None = None
) -> list[CheckDecision]:
    """Checks through the watcher's own `decide`, the alerts applied as the store does."""
    policy = policy or CheckPolicy()
    open_alerts: dict[str, OpenAlert] = {}
    out = []
    for obs in observations:
        d = decide(record, obs, None, open_alerts, policy, obs.at)
        for key in d.commit.alerts_resolved:
            open_alerts.pop(key, None)
        open_alerts.update({a.condition: a for a in d.commit.alerts_opened})
        record = d.record
        out.append(d)
    return out
