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
