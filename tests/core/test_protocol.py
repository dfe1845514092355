"""The contract: core's model of state.json (schema 1) and the probe answer (v1)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ProtocolError
from core.protocol import FailureKind, RunStatus, parse_probe, parse_state
from tests.core.builders import T0, at, failure, fix, gpu, probe_doc, state_doc


def probe_json(**overrides: Any) -> str:
    doc = probe_doc(at(1), state_doc())
    doc.update(overrides)
    return json.dumps(doc)


def test_a_full_state_parses_into_typed_values() -> None:
    state = parse_state(
        state_doc(
            attempt=2,
            step=41200,
            total_steps=90000,
            throughput=3.5,
            gpus=[gpu(97, 73011, 81920)],
            fixes=[fix(1, "oom", "eval_batch_size 64 -> 32")],
            last_failure=failure(1, "oom", 1, "CUDA out of memory"),
            knobs={"eval_batch_size": 32},
        )
    )
    assert state.status is RunStatus.RUNNING
    assert state.heartbeat_at == T0
    assert state.gpus[0].util_pct == 97
    assert state.last_failure is not None and state.last_failure.kind is FailureKind.OOM
    assert state.fixes[0].at == T0
    assert state.knobs == {"eval_batch_size": 32}


def test_terminal_statuses() -> None:
    assert {s for s in RunStatus if s.terminal} == {"done", "failed", "stopped"}


def test_unknown_extra_keys_within_schema_1_are_tolerated() -> None:
    assert parse_state(state_doc(early_stop={"metric": "eval_loss"})).run == "llama-ft"


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (state_doc(schema=2), "schema 2 is not supported (this watcher reads schema 1)"),
        (state_doc(schema="1"), "schema '1' is not supported"),
        (state_doc(step=-1), "state.json is invalid: step:"),
        (state_doc(attempt=-1), "attempt"),
        (state_doc(max_attempts=0), "max_attempts"),
        (state_doc(status="paused"), "status"),
        (state_doc(heartbeat_at="yesterday"), "heartbeat_at"),
        (state_doc(last_failure=failure(1, 7)), "last_failure.kind"),
        (state_doc(throughput=-1.0), "throughput"),
        (state_doc(gpu_recent={"readings": -1, "gpus": []}), "gpu_recent.readings"),
        (state_doc(gpu_recent={"readings": 5, "gpus": [gpu(50.0)] * 65}), "gpu_recent.gpus"),
        ([], "state is a list, not an object"),
        (None, "state is a NoneType"),
    ],
)
def test_a_bad_state_raises_protocol_error_naming_what_is_wrong(doc: Any, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_state(doc)
    assert words in str(caught.value)


def test_a_failure_kind_this_watcher_does_not_know_is_read_as_an_error_of_that_kind() -> None:
    # An open vocabulary (ARCHITECTURE.md): a newer supervisor's kind is shown, never refused.
    state = parse_state(state_doc(last_failure=failure(1, "cosmic_ray", 1, "bit flip")))
    assert state.last_failure is not None
    assert state.last_failure.kind is FailureKind.ERROR
    assert state.last_failure.label == "error (cosmic_ray)"
    odd = parse_state(state_doc(last_failure=failure(1, "x\n<b>" + "y" * 100)))
    assert odd.last_failure is not None and odd.last_failure.label == f"error (x??b?{'y' * 35})"


def test_every_known_kind_is_its_own_label() -> None:
    for kind in FailureKind:
        state = parse_state(state_doc(last_failure=failure(1, kind.value)))
        assert state.last_failure is not None and state.last_failure.label == kind.value


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ProtocolError):
        parse_state(state_doc(heartbeat_at="2026-11-28T03:00:00"))


def test_a_good_probe_parses() -> None:
    probe = parse_probe(
        json.dumps(probe_doc(at(1), state_doc(), log_text="step 1\n", gpus=[gpu(50)]))
    )
    assert probe.at == at(1)
    assert probe.state is not None and probe.state_error is None
    assert probe.log is not None and probe.log.text == "step 1\n" and probe.log.next_offset == 7
    assert probe.gpus[0].util_pct == 50


def test_a_bad_state_inside_a_good_probe_is_a_state_error_not_an_exception() -> None:
    probe = parse_probe(probe_json(state=state_doc(schema=2)))
    assert probe.state is None
    assert probe.state_error is not None and "schema 2" in probe.state_error


def test_the_supervisors_own_state_error_is_kept() -> None:
    probe = parse_probe(probe_json(state=None, state_error="state.json is empty (truncated)"))
    assert probe.state is None
    assert probe.state_error == "state.json is empty (truncated)"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "non-JSON"),
        (b"Segmentation fault\n", "non-JSON"),
        (b"\xff\xfe\x00", "non-JSON"),
        ("[1, 2]", "probe answered a list"),
        (probe_json(probe=2), "probe version 2 is not supported"),
        (json.dumps({"at": "2026-11-28T03:00:00Z"}), "probe version None"),
        (probe_json(at="later"), "probe answer is invalid: at"),
        (probe_json(log={"attempt": 1, "offset": -5}), "probe answer is invalid: log"),
    ],
)
def test_garbage_probe_output_raises_protocol_error(raw: str | bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_probe(raw)
    assert words in str(caught.value)


def test_a_long_garbage_answer_is_previewed_not_echoed_whole() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_probe("x" * 10_000)
    assert len(str(caught.value)) < 200


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_parse_probe_raises_nothing_but_protocol_error(raw: bytes | str) -> None:
    try:
        parse_probe(raw)
    except ProtocolError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(sorted(state_doc())), json_values, max_size=6))
def test_a_mangled_state_is_a_protocol_error_or_a_valid_state(changes: dict[str, Any]) -> None:
    doc = {**state_doc(), **changes}
    try:
        parse_state(doc)
    except ProtocolError:
        pass


def test_the_supervisors_recent_medians_parse_and_an_older_supervisor_has_none() -> None:
    medians = {**gpu(88.5), "power_w": 600.0, "power_limit_w": 700.0}
    state = parse_state(state_doc(gpu_recent={"readings": 20, "span_s": 285.0, "gpus": [medians]}))
    assert state.gpu_recent is not None and state.gpu_recent.readings == 20
    assert [(g.util_pct, g.power_w) for g in state.gpu_recent.gpus] == [(88.5, 600.0)]
    assert parse_state(state_doc()).gpu_recent is None
