"""The Transport contract, run against LocalTransport and against SshTransport on a real sshd:
both must behave alike wherever a caller can tell."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.errors import TransportError
from core.local import LocalTransport
from core.ports import Transport
from core.ssh import SshPool

pytest_plugins = ["tests.fixtures.sshd"]

PY = sys.executable  # the sshd fixture runs commands as this same user on this machine


@pytest.fixture(params=["local", "ssh"])
async def transport(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Transport]:
    if request.param == "local":
        yield LocalTransport()
        return
    sshd = request.getfixturevalue("sshd")
    pool = SshPool(tmp_path / "state" / "known_hosts")
    try:
        yield await pool.transport(sshd.target())
    finally:
        await pool.close()


async def test_it_returns_output_and_exit_status(transport: Transport) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = await transport.run([PY, "-c", code], timeout_s=20)
    assert (result.exit_status, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


async def test_it_passes_shell_metacharacters_as_literal_arguments(
    transport: Transport, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    args = [f"; touch {pwned}", f"$(touch {pwned})", f"`touch {pwned}`", "a b", "'q\"", "*", ""]
    code = "import json, sys; print(json.dumps(sys.argv[1:]))"
    result = await transport.run([PY, "-c", code, *args], timeout_s=20)
    assert json.loads(result.stdout) == args
    assert not pwned.exists()


async def test_it_feeds_stdin_and_closes_it(transport: Transport) -> None:
    echoed = await transport.run(["cat"], timeout_s=20, stdin=b"hello\n")
    assert echoed.stdout == b"hello\n"
    # Without stdin the command must see end-of-file, not wait forever.
    empty = await transport.run(["cat"], timeout_s=20)
    assert (empty.exit_status, empty.stdout) == (0, b"")


async def test_a_missing_program_exits_127(transport: Transport) -> None:
    result = await transport.run(["no-such-program-sleepwatch"], timeout_s=20)
    assert result.exit_status == 127


async def test_empty_argv_is_refused(transport: Transport) -> None:
    with pytest.raises(ValueError, match="empty"):
        await transport.run([], timeout_s=5)


async def test_a_timeout_raises_transport_error_and_the_transport_still_works(
    transport: Transport,
) -> None:
    with pytest.raises(TransportError, match="timed out after 0.5s") as caught:
        await transport.run(["sleep", "30"], timeout_s=0.5)
    assert not caught.value.permanent
    after = await transport.run(["echo", "still here"], timeout_s=20)
    assert after.stdout == b"still here\n"


async def test_put_tree_copies_a_tree_and_replaces_files(
    transport: Transport, tmp_path: Path
) -> None:
    source = tmp_path / "src" / "pkg"
    (source / "sub").mkdir(parents=True)
    (source / "__pycache__").mkdir()
    (source / "__init__.py").write_text("one\n")
    (source / "sub" / "deep.py").write_text("deep\n")
    (source / "__pycache__" / "x.pyc").write_bytes(b"\0")
    remote = tmp_path / "remote dir" / "pkg"

    await transport.put_tree(source, str(remote))
    (source / "__init__.py").write_text("two\n")
    await transport.put_tree(source, str(remote))

    assert (remote / "__init__.py").read_text() == "two\n"
    assert (remote / "sub" / "deep.py").read_text() == "deep\n"
    assert not (remote / "__pycache__").exists()


async def test_put_bytes_writes_atomically_with_the_mode(
    transport: Transport, tmp_path: Path
) -> None:
    path = tmp_path / "new" / "dir" / "RUN.json"
    await transport.put_bytes(b'{"a": 1}', str(path))
    await transport.put_bytes(b'{"a": 2}', str(path), mode=0o640)

    assert path.read_bytes() == b'{"a": 2}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(path.parent) == ["RUN.json"]


async def test_local_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"echo $$ > '{pid_file}'; sleep 30 & wait"
    with pytest.raises(TransportError, match="timed out"):
        await LocalTransport().run(["sh", "-c", script], timeout_s=0.5)
    group = int(pid_file.read_text())
    assert _wait_until_group_gone(group), "the background child outlived the timeout"


def _wait_until_group_gone(pgid: int) -> bool:
    # SIGKILL is delivered asynchronously; poll for the condition, not for a duration.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _live_members(pgid):
            return True
        time.sleep(0.02)
    return False


def _live_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
