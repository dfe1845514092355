"""SshPool / SshTransport against a real OpenSSH server on 127.0.0.1: pooling, reconnect with
backoff, host key pinning, the channel limit, and the quoting of argv."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh
import pytest

from core.errors import HostKeyMismatch, TransportError
from core.hostkeys import pin_name
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.supervisor_client import supervisor_argv
from tests.conftest import FakeClock

if TYPE_CHECKING:  # imported by pytest as a plugin; importing it here first breaks rewriting
    from tests.fixtures.sshd import SshdServer

pytest_plugins = ["tests.fixtures.sshd"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def pin_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sleepwatch" / "known_hosts"


@pytest.fixture
async def pool(pin_file: Path, clock: FakeClock) -> AsyncIterator[SshPool]:
    options = SshOptions(backoff_initial_s=10, backoff_max_s=60, connect_timeout_s=10)
    pool = SshPool(pin_file, options=options, clock=clock)
    try:
        yield pool
    finally:
        await pool.close()


async def _echo(transport: SshTransport, text: str = "ok") -> bytes:
    return (await transport.run(["echo", text], timeout_s=20)).stdout


async def test_one_connection_serves_every_call_and_every_transport_of_a_host(
    pool: SshPool, sshd: SshdServer, tmp_path: Path
) -> None:
    first = await pool.transport(sshd.target())
    second = await pool.transport(sshd.target())
    for _ in range(3):
        assert await _echo(first) == b"ok\n"
    await second.put_bytes(b"x", str(tmp_path / "f"))
    assert await _echo(second) == b"ok\n"
    await second.close()  # a transport's close leaves the shared connection open
    assert await _echo(first) == b"ok\n"
    assert pool.stats(sshd.target()).connects == 1


async def test_the_first_connection_pins_the_host_key_in_a_private_file(
    pool: SshPool, sshd: SshdServer, pin_file: Path
) -> None:
    await _echo(await pool.transport(sshd.target()))

    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(pin_file.parent.stat().st_mode) == 0o700
    name, key_type, _key = pin_file.read_text().split()
    assert (name, key_type) == (pin_name(sshd.host, sshd.port), "ssh-ed25519")
    assert pin_name("h", 22) == "h"


async def test_a_changed_host_key_is_refused_and_the_pin_kept(
    pool: SshPool, sshd: SshdServer, pin_file: Path, clock: FakeClock
) -> None:
    await _echo(await pool.transport(sshd.target()))
    await pool.close()
    pinned = pin_file.read_bytes()
    sshd.regenerate_host_key()

    transport = await pool.transport(sshd.target())
    with pytest.raises(HostKeyMismatch, match="host key changed") as caught:
        await _echo(transport)
    assert caught.value.permanent
    assert sshd.host_key_fingerprint() in caught.value.reason

    # The pool does not try that host again on its own, however long we wait.
    clock.advance(24 * 3600)
    with pytest.raises(HostKeyMismatch):
        await _echo(transport)
    assert pool.stats(sshd.target()).failed_connects == 1
    assert pin_file.read_bytes() == pinned


async def test_a_users_known_hosts_is_used_instead_of_pins_and_unknown_hosts_are_refused(
    sshd: SshdServer, tmp_path: Path, pin_file: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    strict = SshPool(pin_file, known_hosts=known_hosts)
    with pytest.raises(TransportError, match="not in") as caught:
        await _echo(await strict.transport(sshd.target()))
    assert caught.value.permanent and not isinstance(caught.value, HostKeyMismatch)
    await strict.close()

    public = sshd.host_key_path.with_name(sshd.host_key_path.name + ".pub").read_text()
    known_hosts.write_text(f"{pin_name(sshd.host, sshd.port)} {public}")
    trusting = SshPool(pin_file, known_hosts=known_hosts)
    assert await _echo(await trusting.transport(sshd.target())) == b"ok\n"
    await trusting.close()
    assert not pin_file.exists()


async def test_a_stopped_sshd_is_a_transport_error_and_a_restart_reconnects_after_backoff(
    pool: SshPool, sshd: SshdServer, clock: FakeClock
) -> None:
    transport = await pool.transport(sshd.target())
    await _echo(transport)
    sshd.stop()

    # The first call may meet the dropped connection, the next one a refused connect.
    for _ in range(2):
        with pytest.raises(TransportError):
            await _echo(transport)
    failed = pool.stats(sshd.target()).failed_connects
    assert failed >= 1

    sshd.start()
    with pytest.raises(TransportError, match="not reconnecting before"):
        await _echo(transport)
    assert pool.stats(sshd.target()).failed_connects == failed  # refused without dialling

    clock.advance(60)
    assert await _echo(transport) == b"ok\n"
    assert pool.stats(sshd.target()).connects == 2


async def test_a_connection_dropped_mid_command_fails_that_command(
    pool: SshPool, sshd: SshdServer
) -> None:
    transport = await pool.transport(sshd.target())
    await _echo(transport)
    running = asyncio.create_task(transport.run(["sleep", "30"], timeout_s=60))
    while pool.stats(sshd.target()).channels_open == 0:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(sshd.stop)
    with pytest.raises(TransportError):
        await running


async def test_a_timed_out_command_gives_its_channel_back(sshd: SshdServer, pin_file: Path) -> None:
    pool = SshPool(pin_file, options=SshOptions(max_sessions=1, max_connections=1))
    transport = await pool.transport(sshd.target())
    for _ in range(3):  # with one channel slot, a leaked slot would block the next call
        with pytest.raises(TransportError, match="timed out"):
            await transport.run(["sleep", "30"], timeout_s=0.3)
    assert await _echo(transport) == b"ok\n"
    stats = pool.stats(sshd.target())
    assert (stats.channels_open, stats.connects) == (0, 1)
    await pool.close()


async def test_a_timed_out_command_does_not_outlive_its_deadline_on_the_host(
    sshd: SshdServer, pin_file: Path, tmp_path: Path
) -> None:
    # sshd refuses signal requests on root logins, so only the remote `timeout` can end it.
    pool = SshPool(pin_file, options=SshOptions(remote_kill_grace_s=0.2))
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(30)"
    with pytest.raises(TransportError, match="timed out"):
        await (await pool.transport(sshd.target())).run([sshd.python, "-c", code], timeout_s=2)
    await pool.close()
    assert await _until_gone(int(pid_file.read_text()))


async def _until_gone(pid: int) -> bool:
    for _ in range(500):  # poll the condition, up to about 10 s
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        await asyncio.sleep(0.02)
    return False


COUNTER = """
import os, sys, time, uuid
d = sys.argv[1]
me = os.path.join(d, uuid.uuid4().hex)
open(me, "w").close()
seen = [len(os.listdir(d))]
time.sleep(0.3)
seen.append(len(os.listdir(d)))
os.remove(me)
print(max(seen))
"""


async def test_no_more_than_the_channel_limit_run_at_once_on_each_connection(
    sshd: SshdServer, pin_file: Path, tmp_path: Path
) -> None:
    options = SshOptions(max_sessions=2, max_connections=2)
    pool = SshPool(pin_file, options=options)
    transport = await pool.transport(sshd.target())
    markers = tmp_path / "running"
    markers.mkdir()
    argv = [sshd.python, "-c", COUNTER, str(markers)]
    results = await asyncio.gather(*(transport.run(argv, timeout_s=60) for _ in range(8)))

    seen = [int(r.stdout) for r in results]
    assert all(r.exit_status == 0 for r in results)
    assert max(seen) <= 4, seen  # two connections of two channels
    stats = pool.stats(sshd.target())
    assert (stats.channels_peak, stats.channels_open, stats.connects) == (4, 0, 2)
    await pool.close()


async def test_remote_argv_runs_the_supervisor_package_from_its_workdir(
    pool: SshPool, sshd: SshdServer, tmp_path: Path
) -> None:
    workdir = tmp_path / "work dir; $(x)"
    package = workdir / "supervisor"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import json, sys; print(json.dumps(sys.argv[1:]))")
    argv = supervisor_argv(sshd.python, str(workdir), ["probe", "--offset", "0"])

    result = await (await pool.transport(sshd.target())).run(argv, timeout_s=20)
    assert json.loads(result.stdout) == ["probe", "--offset", "0"], result.stderr
    assert shlex.split(shlex.join(argv)) == argv


async def test_a_corrupt_pin_file_is_a_permanent_transport_error(
    pool: SshPool, sshd: SshdServer, pin_file: Path
) -> None:
    pin_file.parent.mkdir(parents=True)
    pin_file.write_text(f"{pin_name(sshd.host, sshd.port)} ssh-ed25519 not-base64!\n")
    with pytest.raises(TransportError, match="unreadable key material") as caught:
        await _echo(await pool.transport(sshd.target()))
    assert caught.value.permanent


async def test_a_refused_user_key_is_a_permanent_transport_error(
    pool: SshPool, sshd: SshdServer, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(stranger)
    target = SshTarget(sshd.host, sshd.port, sshd.user, stranger)
    with pytest.raises(TransportError, match="authentication refused") as caught:
        await _echo(await pool.transport(target))
    assert caught.value.permanent


async def test_a_probe_never_waits_behind_wait_channels_and_more_waits_open_a_connection(
    sshd: SshdServer, pin_file: Path
) -> None:
    pool = SshPool(pin_file)  # stock limits: MaxSessions 10, two kept for probes
    transport = await pool.transport(sshd.target())
    waits = [
        asyncio.create_task(transport.run(["sleep", "30"], timeout_s=60, lasting=True))
        for _ in range(9)
    ]
    while pool.stats(sshd.target()).channels_open < 9:
        await asyncio.sleep(0.01)

    assert await _echo(transport) == b"ok\n"  # while nine waits hold their channels
    stats = pool.stats(sshd.target())
    assert (stats.connections, stats.connects) == (2, 2)  # the ninth wait opened the second
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    await pool.close()


def _grant_sessions(sshd: SshdServer, sessions: int) -> None:
    """Restart the test's sshd with `MaxSessions sessions` (the fixture's is 10)."""
    sshd.stop()
    text = sshd.config_path.read_text().replace("MaxSessions 10", f"MaxSessions {sessions}")
    sshd.config_path.write_text(text)
    sshd.start()


async def test_a_server_allowing_fewer_sessions_teaches_the_pool_its_limit(
    sshd: SshdServer, pin_file: Path
) -> None:
    _grant_sessions(sshd, 3)
    pool = SshPool(pin_file)  # told 10; the server grants 3
    transport = await pool.transport(sshd.target())
    results = await asyncio.gather(
        *(transport.run(["sh", "-c", "sleep 0.5; echo ok"], timeout_s=60) for _ in range(8))
    )

    assert [r.stdout for r in results] == [b"ok\n"] * 8  # refused channels went elsewhere
    stats = pool.stats(sshd.target())
    assert stats.limit == 3
    assert stats.connects >= 3  # eight channels, three per connection
    await pool.close()


async def test_keepalives_idle_while_a_session_process_is_open_and_resume_after(
    sshd: SshdServer, pin_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A supervisor session beats on its own (and is dropped when a beat is missed), so the
    connection carrying it sends no SSH keepalives meanwhile: at 5,000 runs they cost a packet
    round trip per connection and minute. When it ends, keepalives resume."""
    caplog.set_level(logging.DEBUG, logger="asyncssh")
    options = SshOptions(connect_timeout_s=10, keepalive_interval_s=0.1)
    pool = SshPool(pin_file, options=options)

    def keepalives() -> int:
        return sum("Sending keepalive request" in r.getMessage() for r in caplog.records)

    async def until_a_keepalive() -> None:
        caplog.clear()
        for _ in range(600):
            if keepalives():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("no keepalive was sent")

    try:
        transport = await pool.transport(sshd.target())
        assert await _echo(transport) == b"ok\n"  # connections open lazily
        await until_a_keepalive()  # an idle connection keeps its link alive itself
        async with transport.open_process(["cat"], open_timeout_s=20) as proc:
            caplog.clear()
            await asyncio.sleep(1.0)  # ten keepalive intervals with nothing said
            await proc.send(b"still here\n")
            assert await proc.read(64) == b"still here\n"
            assert keepalives() == 0
        await until_a_keepalive()
        assert await _echo(transport) == b"ok\n"
    finally:
        await pool.close()


async def test_file_transfers_refused_a_channel_go_elsewhere_too(
    sshd: SshdServer, pin_file: Path, tmp_path: Path
) -> None:
    """A launch's uploads are SFTP channels: a sweep launched on one box puts eight runs'
    files at once, and a server granting fewer sessions than the pool was told (or one
    still counting a session just closed) refuses some. Those are tried again elsewhere,
    as an exec's are, instead of failing the launch."""
    _grant_sessions(sshd, 3)
    pool = SshPool(pin_file)  # told 10; the server grants 3
    transport = await pool.transport(sshd.target())
    local = tmp_path / "module.py"
    local.write_bytes(b"x = 1\n" * 20_000)
    remote = tmp_path / "remote"
    await asyncio.gather(
        *(transport.put_bytes(b"%d\n" % i, str(remote / f"RUN-{i}.json")) for i in range(8)),
        *(transport.put_files([(local, str(remote / f"m{i}" / "module.py"))]) for i in range(8)),
    )

    assert [(remote / f"RUN-{i}.json").read_bytes() for i in range(8)] == [
        b"%d\n" % i for i in range(8)
    ]
    assert all(
        (remote / f"m{i}" / "module.py").read_bytes() == local.read_bytes() for i in range(8)
    )
    assert pool.stats(sshd.target()).limit == 3
    await pool.close()
