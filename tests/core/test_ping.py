"""The health ping (healthchecks.io style) against a real HTTP server on 127.0.0.1: a GET on
each healthy beat, `/fail` on a broken one, and a ping that fails never breaks the loop."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from core.config import Config
from core.console import ConsoleNotifier
from core.local import LocalTransport
from core.ping import Pinger
from core.sdnotify import SdNotifier
from core.service import Service
from core.store import Store
from tests.conftest import FakeClock
from tests.core.builders import T0


@dataclass
class PingServer:
    url: str = ""
    paths: list[str] = field(default_factory=list)
    status: int = 200


@pytest_asyncio.fixture
async def server() -> AsyncIterator[PingServer]:
    state = PingServer()

    async def handle(request: web.Request) -> web.Response:
        state.paths.append(request.path)
        return web.Response(status=state.status, text="OK")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}/ping/0b1c5f0e-uuid"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_healthy_beats_ping_the_url_and_a_broken_one_pings_fail(server: PingServer) -> None:
    pinger = Pinger(server.url, every_s=60)
    try:
        assert await pinger.ping(True, T0)
        assert not await pinger.ping(True, T0 + timedelta(seconds=30))  # not due yet
        assert await pinger.ping(False, T0 + timedelta(seconds=31))  # a change: at once
        assert await pinger.ping(True, T0 + timedelta(seconds=32))
        assert await pinger.ping(True, T0 + timedelta(seconds=92))
    finally:
        await pinger.close()
    base = "/ping/0b1c5f0e-uuid"
    assert server.paths == [base, f"{base}/fail", base, base]


async def test_a_failing_ping_never_raises_nor_logs_the_url(
    server: PingServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.status = 500
    pinger = Pinger(server.url)
    dead = Pinger("http://127.0.0.1:9/nobody-listens", timeout_s=2)
    try:
        assert not await pinger.ping(True, T0)
        assert not await dead.ping(True, T0)
    finally:
        await pinger.close()
        await dead.close()
    assert "uuid" not in repr(pinger)
    assert "the health ping failed" in caplog.text
    assert "uuid" not in caplog.text and "nobody-listens" not in caplog.text


async def test_each_beat_of_serve_feeds_the_watchdog_and_pings_its_health(
    server: PingServer, tmp_path: Path
) -> None:
    """The service's own beat: WATCHDOG=1 to systemd's socket, the ping URL when healthy,
    `/fail` once a problem is known; a dead ping URL never stops the beat."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "n.sock"))
    sock.settimeout(5)
    clock = FakeClock(T0)
    store = await Store.open(tmp_path / "db.sqlite3")
    pinger = Pinger(server.url, every_s=60)
    local = LocalTransport()
    service = Service(
        Config(),
        store,
        ConsoleNotifier(io.StringIO()),
        None,
        lambda record: local,
        clock,
        pinger=pinger,
        sd=SdNotifier(str(tmp_path / "n.sock")),
        alarm=lambda line: None,
    )
    try:
        await service.beat_once()
        assert sock.recv(64) == b"WATCHDOG=1"
        service.problems["telegram"] = "the bot token was refused"
        clock.advance(30)
        await service.beat_once()
        assert sock.recv(64) == b"WATCHDOG=1"
        service.pinger = Pinger("http://127.0.0.1:9/nobody", timeout_s=2)
        clock.advance(30)
        await service.beat_once()  # the ping fails: logged, the beat goes on
        assert sock.recv(64) == b"WATCHDOG=1"
        await service.pinger.close()
    finally:
        await pinger.close()
        await store.close()
        sock.close()
    assert server.paths == ["/ping/0b1c5f0e-uuid", "/ping/0b1c5f0e-uuid/fail"]
