"""The pool's cipher choice against a real OpenSSH server: AES-GCM when the server offers it
(the watcher's CPU per exec, bench/fleet.py), and a server that offers only chacha20-poly1305
still connects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.ssh import SshPool
from core.ssh_pool import CIPHERS

if TYPE_CHECKING:  # imported by pytest as a plugin; importing it here first breaks rewriting
    from tests.fixtures.sshd import SshdServer

pytest_plugins = ["tests.fixtures.sshd"]


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[SshPool]:
    pool = SshPool(tmp_path / "known_hosts")
    try:
        yield pool
    finally:
        await pool.close()


async def _ciphers(pool: SshPool, sshd: SshdServer) -> tuple[str, str]:
    async with pool.channel(sshd.target(), 20) as conn:
        await conn.run("true", check=True)
        return conn.get_extra_info("send_cipher"), conn.get_extra_info("recv_cipher")


async def test_the_pool_speaks_aes_gcm_to_a_stock_server(pool: SshPool, sshd: SshdServer) -> None:
    assert await _ciphers(pool, sshd) == ("aes128-gcm@openssh.com", "aes128-gcm@openssh.com")


async def test_a_server_without_aes_gcm_still_connects(pool: SshPool, sshd: SshdServer) -> None:
    sshd.stop()
    text = sshd.config_path.read_text()
    sshd.config_path.write_text(text + "Ciphers chacha20-poly1305@openssh.com\n")
    sshd.start()
    assert await _ciphers(pool, sshd) == (
        "chacha20-poly1305@openssh.com",
        "chacha20-poly1305@openssh.com",
    )
    assert CIPHERS[0] != "chacha20-poly1305@openssh.com"  # it was not simply the first choice
