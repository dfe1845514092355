"""Watch the watcher, through a real `sleepwatch serve` process started the way the systemd unit
starts it (deploy/sleepwatch.service): the secrets only as credential files in
$CREDENTIALS_DIRECTORY (LoadCredential=), $NOTIFY_SOCKET a real AF_UNIX datagram socket
(Type=notify, WatchdogSec=), and the health ping URL a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from aiohttp import web

from tests.fixtures.fake_telegram import FakeTelegram
from tests.reliability.helpers import wait_for
from tests.reliability.serve import Sleepwatch, stop

UP_S = 60.0  # importing aiogram alone takes seconds on a loaded machine


class UnderSystemd(Sleepwatch):
    def __init__(self, tmp_path: Path, tg: FakeTelegram, credentials: Path, notify: Path) -> None:
        super().__init__(tmp_path, tg, tmp_path / "state", heartbeat=0.5)
        self.credentials = credentials
        self.notify = notify

    def env(self, token: str | None) -> dict[str, str]:
        env = super().env(token)
        del env["SLEEPWATCH_TELEGRAM_TOKEN"]  # only the credential holds it
        env.pop("SLEEPWATCH_PING_URL", None)
        env["CREDENTIALS_DIRECTORY"] = str(self.credentials)
        env["NOTIFY_SOCKET"] = str(self.notify)
        env["WATCHDOG_USEC"] = "180000000"
        return env


async def test_serve_under_systemd_reads_its_credentials_notifies_and_pings(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    pings: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        pings.append(request.path)
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ping)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]

    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "SLEEPWATCH_TELEGRAM_TOKEN").write_text(fake_telegram.token + "\n")
    (credentials / "SLEEPWATCH_PING_URL").write_text(f"http://{host}:{port}/ping/check-uuid")
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    received: list[str] = []

    async def receive() -> None:
        loop = asyncio.get_running_loop()
        while True:
            received.append((await loop.sock_recv(sock, 4096)).decode())

    listener = asyncio.create_task(receive())
    cli = UnderSystemd(tmp_path, fake_telegram, credentials, notify)
    serve = await cli.start("serve")
    try:
        await wait_for(lambda: any(m.startswith("READY=1") for m in received), UP_S, what="READY")
        await wait_for(lambda: "WATCHDOG=1" in received, 30, what="the watchdog")
        await wait_for(lambda: "/ping/check-uuid" in pings, 30, what="the health ping")
        # the token came from the credential: the bot talks to Telegram with it
        await wait_for(lambda: bool(fake_telegram.calls), 30, what="a Bot API call")
        assert "no SLEEPWATCH_TELEGRAM_TOKEN" not in serve.stdout()
    finally:
        code = await stop(serve)
        await asyncio.sleep(0.2)  # the last datagram
        listener.cancel()
        sock.close()
        await runner.cleanup()
    assert code == 0, cli.log_text()
    assert received[-1] == "STOPPING=1", received
    assert "check-uuid" not in cli.log_text()  # the ping URL is a secret: never logged
