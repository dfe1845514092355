"""A launch rewrites the supervisor's modules on a host where other runs' supervisors import
them at every probe (a sweep on one 8-GPU box): a reader must never see half a file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.local import LocalTransport
from core.ports import Transport
from core.ssh import SshOptions, SshPool, SshTransport
from tests.fixtures.sshd import SshdServer

OLD, NEW = b"a" * (4 << 20), b"b" * (4 << 20)


async def reader_sees_only_whole_files(
    transport: Transport, local: Path, remote: Path, rounds: int
) -> set[int]:
    """Upload `rounds` times while reading the target in a loop; the sizes the reader saw."""
    seen: set[int] = set()
    done = asyncio.Event()

    async def read_loop() -> None:
        while not done.is_set():
            seen.add(len(await asyncio.to_thread(remote.read_bytes)))
            await asyncio.sleep(0)

    reader = asyncio.create_task(read_loop())
    try:
        for i in range(rounds):
            local.write_bytes(NEW if i % 2 == 0 else OLD)
            await transport.put_files([(local, str(remote))])
    finally:
        done.set()
        await reader
    return seen


@pytest.mark.parametrize("kind", ["local", "ssh"])
async def test_an_upload_replaces_each_file_whole(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    local, remote = tmp_path / "module.py", tmp_path / "remote" / "module.py"
    remote.parent.mkdir()
    remote.write_bytes(OLD)
    if kind == "local":
        seen = await reader_sees_only_whole_files(LocalTransport(), local, remote, 12)
    else:
        sshd: SshdServer = request.getfixturevalue("sshd")
        pool = SshPool(tmp_path / "known_hosts", options=SshOptions(backoff_initial_s=0.05))
        try:
            transport = SshTransport(pool, sshd.target(), SshOptions(backoff_initial_s=0.05))
            seen = await reader_sees_only_whole_files(transport, local, remote, 6)
        finally:
            await pool.close()
    assert seen == {len(OLD)}  # every read: a whole file (old or new: same size here)
    assert not [p for p in remote.parent.iterdir() if p.name != "module.py"]  # no temp left
