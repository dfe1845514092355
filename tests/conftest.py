"""Shared fixtures: a fake clock, and the real local servers (sshd, fake Bot API, fake Vast)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest_plugins = [
    "tests.fixtures.sshd",
    "tests.fixtures.fake_vast",
    "tests.fixtures.fake_telegram",
    "tests.skipguard",
]


class FakeClock:
    """A tz-aware UTC clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 28, 3, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first: spread over the xdist workers (`make test`), a minute-long test that
    starts last leaves one worker running alone at the end. Marked fault loops lead, then the
    suites that drive real processes (serve, sshd, trainers), then the rest in file order."""

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(_LONGEST):
            return 0
        if item.get_closest_marker("slow") is not None:
            return 1
        return 2 if item.nodeid.startswith(_REAL_PROCESS_SUITES) else 3

    items.sort(key=rank)


_LONGEST = ("tests/reliability/test_watcher_sigkill.py",)  # 20 restarts of serve: minutes
_REAL_PROCESS_SUITES = ("tests/reliability/", "tests/e2e/", "tests/supervisor/test_corpus.py")
