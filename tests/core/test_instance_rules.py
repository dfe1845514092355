"""Pure verdicts about the instance itself: what the provider says, and the teardown policy."""

from __future__ import annotations

import pytest

from core.exit_plan import should_destroy
from core.instance import InstanceVerdict, instance_finding
from core.models import InstanceInfo, InstanceState, instance_state
from core.providers.vast import vast_state
from core.rules import Finding


def info(status: str | None) -> InstanceInfo:
    """What the Vast adapter makes of a Vast status (its mapping is tested in test_vast)."""
    return InstanceInfo(id="12345", state=vast_state(status), status=status)


def finding_of(
    status: str | None, run_status: str = "running", *, gone: bool = False, before: int = 0
) -> Finding | None:
    return instance_finding(
        "12345", None if gone else info(status), None, run_status, before
    ).finding


def test_a_provider_error_defers_to_the_unreachable_rule_and_keeps_the_count() -> None:
    verdict = instance_finding("12345", None, "HTTP 503", "running", 1)
    assert verdict == InstanceVerdict(None, 1)


def test_a_vanished_instance_is_lost_on_the_second_check_in_a_row() -> None:
    first = instance_finding("12345", None, None, "running", 0)
    assert first == InstanceVerdict(None, 1)  # one answer is never enough
    second = instance_finding("12345", None, None, "running", first.gone_checks)
    assert second.finding is not None and second.finding.key == "instance_lost"
    assert "12345 no longer exists" in second.finding.reason


@pytest.mark.parametrize("status", ["exited", "unknown", "offline", "destroyed"])
def test_an_instance_that_will_not_come_back_is_lost_on_the_second_check(status: str) -> None:
    assert finding_of(status) is None
    finding = finding_of(status, before=1)
    assert finding is not None and finding.key == "instance_lost"
    assert status in finding.reason or "no longer exists" in finding.reason


@pytest.mark.parametrize("status", ["running", "loading", "stopped", "some-new-status"])
def test_an_instance_seen_alive_starts_the_count_again(status: str) -> None:
    assert instance_finding("12345", info(status), None, "running", 1).gone_checks == 0


@pytest.mark.parametrize("run_status", ["starting", "running", "retrying", "unreachable"])
def test_a_stopped_instance_under_a_live_run_is_an_alert(run_status: str) -> None:
    finding = finding_of("stopped", run_status)
    assert finding is not None and finding.key == "instance_stopped"
    assert not finding.soft and not finding.event


@pytest.mark.parametrize("run_status", ["done", "failed", "stopped"])
def test_a_stopped_instance_after_the_run_ended_is_fine(run_status: str) -> None:
    assert finding_of("stopped", run_status) is None


@pytest.mark.parametrize("status", ["running", "loading", None])
def test_a_running_or_loading_instance_says_nothing(status: str | None) -> None:
    assert finding_of(status) is None


def test_no_instance_at_all_is_gone() -> None:
    assert instance_state(None) is InstanceState.GONE


@pytest.mark.parametrize(
    ("status", "on_done", "on_fail", "expected"),
    [
        ("done", True, True, True),
        ("done", False, True, False),
        ("failed", True, True, True),
        ("failed", True, False, False),
        ("stopped", True, True, True),
        ("stopped", True, False, False),
        ("running", True, True, False),
        ("retrying", True, True, False),
        ("unreachable", True, True, False),
    ],
)
def test_the_teardown_policy(status: str, on_done: bool, on_fail: bool, expected: bool) -> None:
    assert should_destroy(status, destroy_on_done=on_done, destroy_on_fail=on_fail) is expected
