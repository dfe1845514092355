"""Every run ends with exactly one terminal message, whatever ended it, through the real
`sleepwatch serve` process against the real sshd, the fake Bot API and the fake Vast API:
a deadline, a lost instance, a `sleepwatch teardown` from another shell, a run that ended before
anyone looked, and a serve killed while its DELETE was in flight. The message carries the status
line, outcome, duration, last step, cost and what happened to the instance; the run's row says
how it ended (never `running`) in `sleepwatch runs`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.supervisor_client import supervisor_argv
from tests.reliability.helpers import (
    CHAT_ID,
    INSTANCE,
    RUN,
    STEP_TRAINER,
    Cli,
    db_rows,
    ended_and_told,
    wait_for,
    write_config,
)

if TYPE_CHECKING:
    from tests.fixtures.fake_telegram import FakeTelegram
    from tests.fixtures.fake_vast import FakeVast
    from tests.fixtures.sshd import SshdServer

DPH = 0.412


class World:
    def __init__(self, tmp_path: Path, cli: Cli) -> None:
        self.tmp_path = tmp_path
        self.cli = cli
        self.db = tmp_path / "state" / "sleepwatch.sqlite3"
        self.run_dir = tmp_path / "runs" / RUN
        self.serve: asyncio.subprocess.Process | None = None

    async def launch(self) -> None:
        status, out = await self.cli.run("launch", RUN)
        assert status == 0, out

    async def start_serve(self) -> None:
        self.serve = await self.cli.start("serve")

    async def stop_serve(self) -> None:
        if self.serve is not None and self.serve.returncode is None:
            self.serve.send_signal(signal.SIGTERM)
            assert await self.serve.wait() == 0, self.cli.log_text()

    def row(self) -> tuple[Any, ...]:
        rows = db_rows(self.db, "SELECT status, outcome, live, teardown FROM runs")
        return rows[0] if rows else ()

    def ended(self) -> bool:
        return ended_and_told(self.db, RUN)

    def checked(self, status: str) -> bool:
        if not self.db.exists():
            return False
        lines = db_rows(self.db, "SELECT status_line FROM checks")
        return any(line.split()[1] == status and "/" in line.split()[3] for (line,) in lines)

    def stop_supervisor(self) -> None:
        """The supervisor is a daemon on this machine that outlives sshd: stop it directly."""
        if (self.run_dir / "state.json").exists():
            argv = supervisor_argv(
                sys.executable,
                str(self.tmp_path / "remote"),
                ["ctl", "--run-dir", str(self.run_dir), "stop"],
            )
            subprocess.run(argv, capture_output=True, timeout=30, check=False)  # noqa: S603


def configure(
    tmp_path: Path, sshd: SshdServer, tg: FakeTelegram, vast: FakeVast, **run: Any
) -> Path:
    trainer = tmp_path / "train.py"
    trainer.write_text(STEP_TRAINER)
    steps, step_s = run.pop("steps", 1000), run.pop("step_s", 0.1)
    vast.add_instance(INSTANCE, ssh_host=sshd.host, ssh_port=sshd.port, dph_total=DPH)
    return write_config(
        tmp_path / "sleepwatch.toml",
        {
            "watcher": {
                "state_dir": tmp_path / "state",
                "python": sys.executable,
                "remote_root": tmp_path / "remote",
                "wait_timeout": 5,
            },
            "cadence": {"scale": 0.0166},
            "thresholds": {
                "heartbeat_stale": 30,
                "stall_after": 60,
                "unreachable_checks": 1,
                "unreachable_after": 0,
            },
            "ssh": {"connect_timeout": 3, "exec_timeout": 10},
            "telegram": {"chat_ids": [CHAT_ID], "api_base": tg.base_url},
            "vast": {"api_base": vast.base_url},
        },
        [
            {
                "name": RUN,
                "instance_id": INSTANCE,
                "user": sshd.user,
                "key": sshd.key_path,
                "run_dir": tmp_path / "runs" / RUN,
                "command": f"{sys.executable} {trainer} {steps} {step_s}",
                "env": {"PYTHONUNBUFFERED": "1"},
                "backoff_s": 0.2,
                "heartbeat_s": 0.3,
                "max_attempts": 1,
                **run,
            }
        ],
    )


@pytest.fixture
async def world(
    tmp_path: Path, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> AsyncIterator[World]:
    logs = tmp_path / "logs"
    logs.mkdir()
    cli = Cli(tmp_path / "sleepwatch.toml", fake_telegram, fake_vast, logs)
    world = World(tmp_path, cli)
    try:
        yield world
    finally:
        if world.serve is not None and world.serve.returncode is None:
            world.serve.kill()
            await world.serve.wait()
        await asyncio.to_thread(world.stop_supervisor)


def sent(tg: FakeTelegram) -> list[str]:
    return [str(m["text"]) for m in tg.sent]


def assert_one_full_terminal_message(tg: FakeTelegram, title: str, instance: str) -> str:
    texts = sent(tg)
    terminal = [t for t in texts if "outcome" in t and "duration" in t]
    assert len(terminal) == 1, texts
    text = terminal[0]
    assert title in text, text
    status_line = next(line for line in text.splitlines() if line.startswith("<code>"))
    assert " stopped 1/1 " in status_line and status_line.endswith(f"{RUN}</code>"), text
    for key in ("outcome", "duration", "attempts", "last step", "cost"):
        assert f"{key}</b>" in text or f"{key}:" in text, (key, text)
    assert "$" in text.split("cost")[1].splitlines()[0], text
    assert instance in text, text
    # what happened to the instance is said once, in the terminal message only
    assert sum(f"{INSTANCE} destroyed" in t for t in texts) == 1, texts
    return text


async def assert_runs_says_stopped(world: World) -> None:
    status, out = await world.cli.run("runs")
    assert status == 0, out
    [line] = [line for line in out.splitlines() if line.endswith(RUN) or f"{RUN} $" in line]
    assert line.split()[1] == "stopped", out


@pytest.mark.slow
async def test_a_deadline_teardown_sends_one_full_terminal_message_and_the_row_ends_stopped(
    world: World, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> None:
    configure(world.tmp_path, sshd, fake_telegram, fake_vast, max_hours=0.002, deadline_grace=0)
    await world.launch()
    await world.start_serve()
    await wait_for(world.ended, 90, what="the deadline teardown")
    await world.stop_serve()

    assert world.row() == ("stopped", "deadline_passed", 0, "destroyed")
    assert_one_full_terminal_message(
        fake_telegram, "stopped (deadline passed)", f"{INSTANCE} destroyed (deadline passed)"
    )
    assert len(fake_vast.calls("DELETE")) == 1
    await assert_runs_says_stopped(world)


@pytest.mark.slow
async def test_a_teardown_from_another_shell_ends_the_run_once_and_serve_does_not_undo_it(
    world: World, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> None:
    configure(world.tmp_path, sshd, fake_telegram, fake_vast)
    await world.launch()
    await world.start_serve()
    await wait_for(lambda: world.checked("running"), 60, what="a check that saw it running")

    status, out = await world.cli.run("teardown", RUN)
    assert status == 0, out
    await wait_for(world.ended, 60, what="the teardown to be told")
    await asyncio.sleep(3)  # serve's checks and wait channel go on meanwhile
    await world.stop_serve()

    assert world.row() == ("stopped", "teardown_requested", 0, "destroyed")
    assert_one_full_terminal_message(
        fake_telegram,
        "stopped (teardown requested)",
        f"{INSTANCE} destroyed (teardown requested)",
    )
    await assert_runs_says_stopped(world)


@pytest.mark.slow
async def test_a_lost_instance_ends_with_one_full_terminal_message(
    world: World, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> None:
    configure(world.tmp_path, sshd, fake_telegram, fake_vast)
    await world.launch()
    await world.start_serve()
    await wait_for(lambda: world.checked("running"), 60, what="a check that saw it running")

    fake_vast.go_offline(INSTANCE)
    sshd.stop()
    await wait_for(world.ended, 90, what="the lost instance to be torn down")
    await world.stop_serve()

    assert world.row() == ("stopped", "instance_lost", 0, "destroyed")
    assert_one_full_terminal_message(
        fake_telegram, "stopped (instance lost)", f"{INSTANCE} destroyed (instance lost)"
    )
    await assert_runs_says_stopped(world)


@pytest.mark.slow
async def test_a_run_that_ended_before_anyone_looked_gets_no_deadline_soon_alert(
    world: World, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> None:
    # The deadline is 30 minutes away (inside the hour-ahead warning) when serve first looks,
    # and the run is already done: its terminal message is all there is to say.
    configure(world.tmp_path, sshd, fake_telegram, fake_vast, steps=3, step_s=0.05, max_hours=0.5)
    await world.launch()
    await wait_for(lambda: b'"done"' in (world.run_dir / "state.json").read_bytes(), 30)
    await world.start_serve()
    await wait_for(world.ended, 60, what="the end to be told")
    await world.stop_serve()

    texts = sent(fake_telegram)
    assert not any("deadline" in t for t in texts), texts
    assert sum("done (completed)" in t for t in texts) == 1, texts
    assert world.row() == ("done", "completed", 0, "destroyed")


@pytest.mark.slow
async def test_a_serve_stopped_the_moment_its_run_ends_still_sends_the_terminal_message(
    world: World, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> None:
    # The terminal message waits 3 s in the outbox (runs ending together are told in order);
    # a SIGTERM inside that wait used to leave it unsent until the next serve, if any.
    configure(world.tmp_path, sshd, fake_telegram, fake_vast, steps=3, step_s=0.05)
    await world.launch()
    await world.start_serve()
    await wait_for(lambda: world.row()[2:3] == (0,), 60, every_s=0.02, what="the run to end")
    await world.stop_serve()

    assert sum("done (completed)" in t for t in sent(fake_telegram)) == 1, sent(fake_telegram)
    assert db_rows(world.db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]


@pytest.mark.slow
async def test_a_serve_killed_while_its_delete_was_in_flight_says_destroyed_once(
    world: World, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> None:
    configure(world.tmp_path, sshd, fake_telegram, fake_vast, steps=3, step_s=0.05)
    fake_vast.hold_destroy_answers = asyncio.Event()
    await world.launch()
    await world.start_serve()
    await wait_for(lambda: bool(fake_vast.calls("DELETE")), 60, what="the DELETE")
    assert world.serve is not None
    world.serve.send_signal(signal.SIGKILL)  # the DELETE worked; its answer never came back
    await world.serve.wait()
    fake_vast.hold_destroy_answers.set()

    await world.start_serve()
    await wait_for(world.ended, 60, what="the restarted serve to finish the run")
    await world.stop_serve()

    texts = sent(fake_telegram)
    assert sum(f"{INSTANCE} destroyed" in t for t in texts) == 1, texts
    assert not any("retrying" in t for t in texts), texts
    assert sum("done (completed)" in t for t in texts) == 1, texts
    assert world.row() == ("done", "completed", 0, "destroyed")
    # the restarted serve sends its own DELETE (a teardown is verified only after a DELETE it
    # really sent) and reads the instance gone
    assert INSTANCE not in fake_vast.instances
