"""The watcher's supervisor session over a real OpenSSH sshd on 127.0.0.1 (issue 16): probes go
as lines on one long-lived `supervisor session`, a watch's pushed change wakes the run's check,
a killed session falls back to execs and comes back, and a hostile session line (huge, deep,
NaN, not JSON, or a flood of them) drops the session with a clear reason while the exec path
keeps answering; over the local transport: a session whose heartbeat stops is dropped, and a
ctl the session took but never answered is never sent again by exec."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.errors import TransportError
from core.local import LocalTransport
from core.ssh import SshOptions, SshPool, SshTransport
from core.supervisor_client import SupervisorClient
from core.supervisor_session import SessionHub
from core.waiter import RunWaiter
from tests.conftest import FakeClock
from tests.core.test_races_and_relaunch import record

if TYPE_CHECKING:
    from tests.fixtures.sshd import SshdServer

pytest_plugins = ["tests.fixtures.sshd"]

ROOT = Path(__file__).resolve().parents[2]
CEILING_S = 120.0  # a hang guard only: a 3x slower machine stays far below it
GATED = r"""
import os, sys, time
print("step 1/10", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print("step 10/10", flush=True)
"""


@asynccontextmanager
async def client_over(
    sshd: SshdServer, tmp_path: Path, root: Path
) -> AsyncIterator[tuple[SupervisorClient, SessionHub]]:
    pool = SshPool(tmp_path / "known_hosts", options=SshOptions(backoff_initial_s=0.05))
    hub = SessionHub(heartbeat_s=0.5, retry_initial_s=0.2, retry_max_s=0.5)
    transport = SshTransport(pool, sshd.target(), SshOptions())
    try:
        yield SupervisorClient(transport, sys.executable, str(root), 60.0, sessions=hub), hub
    finally:
        await hub.close()
        await pool.close()


def start_run(tmp_path: Path, go: Path) -> Path:
    (tmp_path / "train.py").write_text(GATED)
    run_dir = tmp_path / "run"
    config = {
        "run": "s",
        "run_dir": str(run_dir),
        "heartbeat_s": 0.2,
        "backoff_s": 0.05,
        "command": f"{sys.executable} {tmp_path / 'train.py'} {go}",
        "max_attempts": 1,
    }
    (tmp_path / "RUN.json").write_text(json.dumps(config))
    started = subprocess.run(
        [sys.executable, "-m", "supervisor", "start", "--config", str(tmp_path / "RUN.json")],
        cwd=ROOT,
        capture_output=True,
        timeout=CEILING_S,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    return run_dir


async def until(condition: object, what: str) -> None:
    async with asyncio.timeout(CEILING_S):
        while not await condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_probes_and_watches_ride_one_session_that_comes_back_after_a_kill(
    sshd: SshdServer, tmp_path: Path, clock: FakeClock
) -> None:
    go = tmp_path / "go"
    run_dir = start_run(tmp_path, go)
    try:
        async with asyncio.timeout(CEILING_S), client_over(sshd, tmp_path, ROOT) as (client, hub):
            await session_flow(client, hub, run_dir, go, clock)
    finally:
        go.touch()  # the trainer ends, and its supervisor with it


async def session_flow(
    client: SupervisorClient, hub: SessionHub, run_dir: Path, go: Path, clock: FakeClock
) -> None:
    async def running() -> bool:
        probe = await client.probe(str(run_dir), attempt=1, offset=0)
        return probe.state is not None and probe.state.step == 1

    await until(running, "the trainer's first step")
    assert hub.counts["opened"] == 1 and hub.counts["fallback"] == 0 and hub.requests["probe"] >= 1
    link = await hub.link(client.transport, client.session_argv(hub.heartbeat_s))
    assert link is not None
    os.kill(int(link.hello["pid"]), signal.SIGKILL)  # the session dies mid-way

    async def back() -> bool:
        probe = await client.probe(str(run_dir), attempt=1, offset=0)  # answered all along
        assert probe.state is not None and probe.state.status == "running"
        return hub.counts["opened"] == 2

    await until(back, "a new session")
    assert hub.counts["lost"] == 1 and hub.counts["fallback"] >= 1  # execs filled the gap
    woken: list[str] = []
    waiter = RunWaiter(
        record("s", clock, status="running", attempt=1, run_dir=str(run_dir)),
        client.transport,
        python=client.python,
        remote_root=client.root,
        quiet_s=3600,
        timeout_s=600,
        wake=woken.append,
        sessions=hub,
    )
    waiting = asyncio.create_task(waiter.run())

    async def watching() -> bool:
        return hub.requests["watch"] >= 1

    await until(watching, "the watch")
    go.touch()
    await waiting  # the pushed `changed` (to done) ends the waiter: terminal
    assert woken == ["s"] and hub.events["changed"] == 1 and hub.counts["lost"] == 1


# what each line is, and a word of the reason the session was dropped for it
HOSTILE = {
    "huge": ("sys.stdout.write('x' * (5 * 1024 * 1024))", "longer than"),
    "deep": ("sys.stdout.write('[' * 50000 + ']' * 50000 + '\\n')", "deeper than"),
    "nan": ("sys.stdout.write('{\"heartbeat\": NaN}\\n')", "NaN"),
    "garbage": ("sys.stdout.write('\\x00\\xff not json at all\\n')", "unreadable"),
    "flood": ("sys.stdout.write('{\"heartbeat\": 1}\\n' * 5000)", "unasked"),
    # 2 MB of escaped quotes never closed: the depth guard's string pattern was quadratic on it
    "quotes": ("sys.stdout.write('\"' + '\\\\\"' * 1000000 + '\\n')", "unreadable"),
}
FAKE_MAIN = r"""
import json, sys, time
if "session" in sys.argv:
    sys.stdout.write("\n@@sleepwatch-answer-v1@@\n" + json.dumps({"session": 1}) + "\n")
    sys.stdout.flush()
    %s
    sys.stdout.flush()
    sys.stdin.read()  # until the watcher, dropping the session, closes it
else:
    probe = {"probe": 1, "at": "2026-11-30T00:00:00Z", "state": None, "tail": ["exec"]}
    sys.stdout.write("\n@@sleepwatch-answer-v1@@\n" + json.dumps(probe) + "\n")
"""


async def test_a_hostile_session_line_drops_the_session_and_execs_answer(
    sshd: SshdServer, tmp_path: Path
) -> None:
    for kind, (line, reason) in HOSTILE.items():
        root = tmp_path / kind
        (root / "supervisor").mkdir(parents=True)
        (root / "supervisor" / "__init__.py").write_text("")
        (root / "supervisor" / "__main__.py").write_text(FAKE_MAIN % line)
        async with asyncio.timeout(CEILING_S), client_over(sshd, tmp_path, root) as (client, hub):
            probe = await client.probe("/nowhere", attempt=1, offset=0)
            assert probe.tail == ("exec",), kind  # the exec path answered
            assert hub.counts["opened"] == 1 and hub.counts["fallback"] == 1, kind
            assert hub.problem is not None and reason in hub.problem, (kind, hub.problem)


SILENT_CTL = r"""
import json, os, sys, time
if "session" in sys.argv:
    sys.stdout.write("\n@@sleepwatch-answer-v1@@\n" + json.dumps({"session": 1}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # takes the ctl, never answers it; ends when the watcher closes it
else:
    open(os.path.join(os.path.dirname(__file__), "ctl-by-exec"), "w").close()
    sys.stdout.write("\n@@sleepwatch-answer-v1@@\n" + json.dumps({"ok": True}) + "\n")
"""


async def test_a_ctl_the_session_took_but_never_answered_is_not_sent_again_by_exec(
    tmp_path: Path,
) -> None:
    (tmp_path / "supervisor").mkdir()
    (tmp_path / "supervisor" / "__init__.py").write_text("")
    (tmp_path / "supervisor" / "__main__.py").write_text(SILENT_CTL)
    hub = SessionHub()
    client = SupervisorClient(LocalTransport(), sys.executable, str(tmp_path), 1.0, sessions=hub)
    try:
        async with asyncio.timeout(CEILING_S):
            with pytest.raises(TransportError, match="ctl unanswered"):
                await client.ctl("/nowhere", "kill-attempt")  # a second one could kill a retry
    finally:
        await hub.close()
    assert hub.requests["ctl"] == 1 and not (tmp_path / "supervisor" / "ctl-by-exec").exists()


SILENT = r"""
import json, sys
if "session" in sys.argv:  # promises a beat every 0.1 s, then says nothing (a dead link)
    hello = {"session": 1, "heartbeat_s": 0.1}
    sys.stdout.write("\n@@sleepwatch-answer-v1@@\n" + json.dumps(hello) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the watcher closes it
else:
    probe = {"probe": 1, "at": "2026-11-30T00:00:00Z", "state": None, "tail": ["exec"]}
    sys.stdout.write("\n@@sleepwatch-answer-v1@@\n" + json.dumps(probe) + "\n")
"""


async def test_a_session_whose_heartbeat_stops_is_dropped_and_execs_answer(
    tmp_path: Path,
) -> None:
    (tmp_path / "supervisor").mkdir()
    (tmp_path / "supervisor" / "__init__.py").write_text("")
    (tmp_path / "supervisor" / "__main__.py").write_text(SILENT)
    hub = SessionHub()
    client = SupervisorClient(LocalTransport(), sys.executable, str(tmp_path), 60.0, sessions=hub)
    try:
        async with asyncio.timeout(CEILING_S):
            probe = await client.probe("/nowhere", attempt=1, offset=0)  # never answered there
    finally:
        await hub.close()
    assert probe.tail == ("exec",) and hub.requests["probe"] == 1
    assert hub.problem is not None and "heartbeat" in hub.problem


async def test_a_cancelled_watch_is_dropped_on_the_far_end_too(tmp_path: Path) -> None:
    """A waiter cancelled (its run ended or was dropped) unwatches its run dir on the real
    supervisor session: the far end stops stepping it, and no event for it comes unasked."""
    go = tmp_path / "go"
    run_dir = start_run(tmp_path, go)
    hub = SessionHub()
    client = SupervisorClient(LocalTransport(), sys.executable, str(ROOT), 60.0, sessions=hub)
    try:
        async with asyncio.timeout(CEILING_S):

            async def running() -> bool:
                probe = await client.probe(str(run_dir), attempt=1, offset=0)
                return probe.state is not None and probe.state.step == 1

            await until(running, "the trainer's first step")
            waiting = asyncio.create_task(
                client.wait(str(run_dir), status="running", attempt=1, quiet_s=None, timeout_s=600)
            )

            async def watched() -> bool:
                return hub.requests["watch"] == 1

            await until(watched, "the watch")
            await client.probe(str(run_dir), attempt=1, offset=0)  # answered after the watch
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            link = await hub.link(client.transport, client.session_argv(hub.heartbeat_s))
            assert link is not None

            async def unwatched() -> bool:
                return link.unwatched == 1

            await until(unwatched, "the unwatch's answer")
            again = await link.request("unwatch", {"run_dir": str(run_dir)}, 30)
            assert again["was_watching"] is False and again["watching"] == 0
    finally:
        go.touch()
        await hub.close()


async def test_a_silent_session_over_ssh_drops_its_link_and_what_else_rode_it_fails_now(
    sshd: SshdServer, tmp_path: Path
) -> None:
    """SSH keepalives idle while a session is open, so a session that misses its beats takes
    its connection down with it: a wait riding the same connection fails at once (it would
    otherwise hang until keepalives, back on, found the link dead) and the exec path answers
    on a new connection."""
    root = tmp_path / "silent"
    (root / "supervisor").mkdir(parents=True)
    (root / "supervisor" / "__init__.py").write_text("")
    (root / "supervisor" / "__main__.py").write_text(SILENT)
    pool = SshPool(tmp_path / "known_hosts", options=SshOptions(backoff_initial_s=0.05))
    hub = SessionHub()  # asks for 60 s beats; the hello's 0.1 s is held to
    transport = SshTransport(pool, sshd.target(), SshOptions())
    client = SupervisorClient(transport, sys.executable, str(root), 60.0, sessions=hub)
    try:
        async with asyncio.timeout(CEILING_S):
            await transport.run(["true"], timeout_s=30)
            # a long wait on the same connection (its remote `timeout` ends it in 95 s anyway)
            riding = asyncio.create_task(transport.run(["sleep", "600"], timeout_s=90))
            probe = await client.probe("/nowhere", attempt=1, offset=0)
            with pytest.raises(TransportError):
                await riding
    finally:
        await hub.close()
        await pool.close()
    assert probe.tail == ("exec",) and hub.problem is not None
    assert "heartbeat" in hub.problem and "link dropped" in hub.problem
    assert pool.stats(sshd.target()).connects == 2
