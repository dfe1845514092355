"""Pure verdicts about the instance itself: what the provider says, and the teardown policy."""

from __future__ import annotations

import pytest

from core.exits import should_destroy
from core.instance import instance_finding
from core.models import InstanceInfo


def info(status: str | None) -> InstanceInfo:
    return InstanceInfo(id="12345", actual_status=status)


def test_a_provider_error_defers_to_the_unreachable_rule() -> None:
    assert instance_finding("12345", None, "HTTP 503", "running") is None


def test_a_vanished_instance_is_lost() -> None:
    finding = instance_finding("12345", None, None, "running")
    assert finding is not None and finding.key == "instance_lost"
    assert "12345 no longer exists" in finding.reason


@pytest.mark.parametrize("status", ["exited", "unknown", "offline"])
def test_an_instance_that_will_not_come_back_is_lost(status: str) -> None:
    finding = instance_finding("12345", info(status), None, "running")
    assert finding is not None and finding.key == "instance_lost"
    assert status in finding.reason and "billing" in finding.reason


@pytest.mark.parametrize("run_status", ["starting", "running", "retrying", "unreachable"])
def test_a_stopped_instance_under_a_live_run_is_an_alert(run_status: str) -> None:
    finding = instance_finding("12345", info("stopped"), None, run_status)
    assert finding is not None and finding.key == "instance_stopped"
    assert not finding.soft and not finding.event


@pytest.mark.parametrize("run_status", ["done", "failed", "stopped"])
def test_a_stopped_instance_after_the_run_ended_is_fine(run_status: str) -> None:
    assert instance_finding("12345", info("stopped"), None, run_status) is None


@pytest.mark.parametrize("status", ["running", "loading", None])
def test_a_running_or_loading_instance_says_nothing(status: str | None) -> None:
    assert instance_finding("12345", info(status), None, "running") is None


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
