"""systemd's notify protocol over a real AF_UNIX datagram socket (what systemd listens on)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sdnotify import SdNotifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def test_ready_watchdog_and_stopping_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    sd = SdNotifier.from_environ({"NOTIFY_SOCKET": path})
    assert sd.enabled
    assert sd.ready() and sd.watchdog() and sd.stopping()
    got = [sock.recv(4096).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=watching", "WATCHDOG=1", "STOPPING=1"]


def test_the_abstract_namespace_is_understood() -> None:
    name = f"sleepwatch-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert SdNotifier(f"@{name}").watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_systemd_it_does_nothing() -> None:
    sd = SdNotifier.from_environ({})
    assert not sd.enabled
    assert not sd.watchdog()


def test_a_socket_that_went_away_is_not_an_error(tmp_path: Path) -> None:
    sd = SdNotifier(str(tmp_path / "gone.sock"))
    assert not sd.watchdog()  # logged, never raised
    assert not sd.ready()


def test_the_watchdog_interval_is_read_from_the_environment() -> None:
    assert SdNotifier.watchdog_s({"WATCHDOG_USEC": "180000000"}) == 180.0
    assert SdNotifier.watchdog_s({"WATCHDOG_USEC": "x"}) is None
    assert SdNotifier.watchdog_s({}) is None
