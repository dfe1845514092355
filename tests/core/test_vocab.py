"""The vocabularies and their trait tables (core.vocab). Pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core import vocab
from core.vocab import (
    BLIND_CONDITIONS,
    CONDITION_TRAITS,
    EVENT_TRAITS,
    FAILURE_TRAITS,
    LIVE_STATUSES,
    NEEDS_STATE,
    SOFT_CONDITIONS,
    Condition,
    Event,
    FailureKind,
    FixKind,
    RunStatus,
    TeardownState,
    WatchStatus,
    condition_of,
    event_of,
    is_loud,
    is_terminal,
    label,
    pending_terminal_key,
)


def test_every_word_of_a_vocabulary_with_traits_has_its_row() -> None:
    assert set(CONDITION_TRAITS) == set(Condition)
    assert set(EVENT_TRAITS) == set(Event)
    assert set(FAILURE_TRAITS) == set(FailureKind)


def test_the_trait_sets_are_the_ones_the_alert_diff_always_used() -> None:
    # the lists transitions.py held before they moved here
    assert SOFT_CONDITIONS == {"stale_output", "low_gpu", "slow"}
    assert NEEDS_STATE == SOFT_CONDITIONS | {"supervisor_dead", "stall", "hang", "invalid_state"}
    assert BLIND_CONDITIONS == {"unreachable", "host_key", "invalid_state"}


def test_a_soft_condition_is_silent_and_a_hard_one_loud() -> None:
    for condition, traits in CONDITION_TRAITS.items():
        assert traits.loud is not traits.soft, condition


def test_every_fix_answers_the_failure_kind_of_its_name() -> None:
    answered = {t.fix for t in FAILURE_TRAITS.values() if t.fix is not None}
    assert answered == set(FixKind)
    for kind, traits in FAILURE_TRAITS.items():
        assert traits.fix is None or traits.fix.value == kind.value


def test_an_event_key_names_its_event_and_its_detail() -> None:
    assert Event.ATTEMPT.key(3) == "attempt:3"
    assert event_of("attempt:3") is Event.ATTEMPT
    assert event_of("terminal:done") is Event.TERMINAL
    assert event_of("deadline_warning:2026-11-30T09:00Z") is Event.DEADLINE_WARNING
    assert event_of("attempt") is None  # a condition word, not an event key
    assert event_of("quantum:1") is None


def test_a_stored_word_reads_back_as_its_member_and_an_unknown_one_as_none() -> None:
    assert condition_of("low_gpu") is Condition.LOW_GPU
    assert condition_of("quantum_flux") is None
    assert Condition.LOW_GPU == "low_gpu"  # the store and the alerts table hold the plain word


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("attempt:3", "retrying"),
        ("stall_kill:2", "stalled: attempt killed"),
        ("deadline_warning:2026-11-30T09:00Z", "deadline soon"),
        ("low_gpu", "GPU idle"),
        ("hang", "hung? (GPU busy, no progress)"),
        ("quantum_flux", "quantum flux"),  # a newer watcher's word: shown, never refused
        ("quantum_flux:2", "quantum flux"),
    ],
)
def test_every_key_has_a_label_a_human_can_read(key: str, shown: str) -> None:
    assert label(key) == shown


def test_an_unknown_word_is_loud_rather_than_slept_through() -> None:
    assert is_loud("quantum_flux") is True
    assert is_loud("low_gpu") is False
    assert is_loud("attempt:2") is False
    assert is_loud("unreachable") is True


def test_run_statuses_the_watcher_reads_as_live_and_as_ended() -> None:
    assert {s for s in RunStatus if s.terminal} == {"done", "failed", "stopped"}
    assert is_terminal("failed") and not is_terminal("unreachable") and not is_terminal(None)
    assert WatchStatus.LAUNCHING in LIVE_STATUSES and "running" in LIVE_STATUSES
    assert not LIVE_STATUSES & {"done", "failed", "stopped", "host_key_changed"}


def test_the_pending_terminal_message_key_is_one_word_for_its_writer_and_its_reset() -> None:
    assert pending_terminal_key("llama-ft") == "terminal:llama-ft"


def test_the_models_read_the_vocabularies_from_their_one_home() -> None:
    from core import models

    assert models.InstanceState is vocab.InstanceState
    assert models.MessageKind is vocab.MessageKind


def test_the_vocabulary_module_imports_nothing_of_the_project() -> None:
    tree = ast.parse(Path(vocab.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "dataclasses", "enum"}


def test_a_teardown_state_is_stored_as_its_plain_word() -> None:
    assert {s.value for s in TeardownState} == {"pending", "destroyed", "failed"}
    assert TeardownState.DESTROYED == "destroyed"  # a row read back compares to the member
