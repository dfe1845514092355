"""The health ping (healthchecks.io style) against a real HTTP server on 127.0.0.1: a GET on
each healthy beat, `/fail` on a broken one, and a ping that fails never breaks the loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import pytest_asyncio
from aiohttp import web

from core.ping import Pinger
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
