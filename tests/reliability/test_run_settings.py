"""Settings are never stale, through the real `sleepwatch serve` and `launch` processes against
the real sshd and the fake Bot and Vast APIs: a run launched from another shell with a config
file `serve` did not start with is watched with the settings it was launched with (SSH key,
remote root, python, cadence, destroy_on_done=false); an entry edited while `serve` runs is
applied on SIGHUP and logged; a run whose settings nobody knows is an alert, never a silent
default."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.supervisor_client import supervisor_argv
from tests.reliability.helpers import (
    CHAT_ID,
    GATED_TRAINER,
    INSTANCE,
    RUN,
    STEP_TRAINER,
    Cli,
    db_rows,
    ended_and_told,
    process_gone,
    wait_for,
    write_config,
)

if TYPE_CHECKING:
    from tests.fixtures.fake_telegram import FakeTelegram
    from tests.fixtures.fake_vast import FakeVast
    from tests.fixtures.sshd import SshdServer


class Setup:
    def __init__(self, tmp_path: Path, sshd: SshdServer, tg: FakeTelegram, vast: FakeVast) -> None:
        self.tmp_path, self.sshd, self.tg, self.vast = tmp_path, sshd, tg, vast
        self.db = tmp_path / "state" / "sleepwatch.sqlite3"
        self.run_dir = tmp_path / "runs" / RUN
        self.trainer = tmp_path / "train.py"
        self.trainer.write_text(STEP_TRAINER)
        self.gated_trainer = tmp_path / "train_gated.py"
        self.gated_trainer.write_text(GATED_TRAINER)
        self.gate = tmp_path / "gate"
        self.clis: list[Cli] = []
        self.serve: asyncio.subprocess.Process | None = None
        vast.add_instance(INSTANCE, ssh_host=sshd.host, ssh_port=sshd.port, dph_total=0.4)

    def cli(self, name: str, *, runs: list[dict[str, Any]], full: bool) -> Cli:
        """A config file `name`. `full`: every watcher setting the run needs; else only what
        any serve on this machine has (state dir, chat, APIs) and defaults for the rest."""
        watcher: dict[str, Any] = {"state_dir": self.tmp_path / "state", "wait_timeout": 5}
        sections: dict[str, dict[str, Any]] = {"watcher": watcher}
        if full:
            watcher.update(python=sys.executable, remote_root=self.tmp_path / "remote")
            sections["cadence"] = {"scale": 0.0166}
            sections["thresholds"] = {"heartbeat_stale": 30, "stall_after": 60}
        sections["ssh"] = {"connect_timeout": 3, "exec_timeout": 10}
        sections["telegram"] = {"chat_ids": [CHAT_ID], "api_base": self.tg.base_url}
        sections["vast"] = {"api_base": self.vast.base_url}
        path = write_config(self.tmp_path / name, sections, runs)
        logs = self.tmp_path / f"logs-{name}"
        logs.mkdir(exist_ok=True)
        cli = Cli(path, self.tg, self.vast, logs)
        self.clis.append(cli)
        return cli

    def run_entry(self, *, steps: int, gated: bool = False, **fields: Any) -> dict[str, Any]:
        """`gated`: the trainer waits for `self.gate` before its first step."""
        command = f"{sys.executable} {self.trainer} {steps} 0.1"
        if gated:
            command = f"{sys.executable} {self.gated_trainer} {steps} 0.1 {self.gate}"
        return {
            "name": RUN,
            "instance_id": INSTANCE,
            "user": self.sshd.user,
            "key": self.sshd.key_path,
            "run_dir": self.run_dir,
            "command": command,
            "env": {"PYTHONUNBUFFERED": "1"},
            "heartbeat_s": 0.3,
            "max_attempts": 1,
            **fields,
        }

    def ended(self) -> bool:
        return ended_and_told(self.db, RUN)

    def checked(self, status: str) -> bool:
        lines = db_rows(self.db, "SELECT status_line FROM checks") if self.db.exists() else []
        return any(line.split()[1] == status for (line,) in lines)

    def texts(self) -> list[str]:
        return [str(m["text"]) for m in self.tg.sent]

    async def stop_serve(self) -> None:
        if self.serve is not None and self.serve.returncode is None:
            self.serve.send_signal(signal.SIGTERM)
            assert await self.serve.wait() == 0

    def logs(self) -> str:
        return "\n".join(cli.log_text() for cli in self.clis)

    def stop_supervisor(self) -> None:
        if (self.run_dir / "state.json").exists():
            argv = supervisor_argv(
                sys.executable,
                str(self.tmp_path / "remote"),
                ["ctl", "--run-dir", str(self.run_dir), "stop"],
            )
            subprocess.run(argv, capture_output=True, timeout=30, check=False)  # noqa: S603


@pytest.fixture
async def setup(
    tmp_path: Path, sshd: SshdServer, fake_telegram: FakeTelegram, fake_vast: FakeVast
) -> AsyncIterator[Setup]:
    s = Setup(tmp_path, sshd, fake_telegram, fake_vast)
    try:
        yield s
    finally:
        if s.serve is not None and s.serve.returncode is None:
            s.serve.kill()
            await s.serve.wait()
        await asyncio.to_thread(s.stop_supervisor)


@pytest.mark.slow
async def test_a_run_launched_with_another_config_file_is_watched_with_its_own_settings(
    setup: Setup, fake_vast: FakeVast
) -> None:
    entry = setup.run_entry(steps=20, destroy_on_done=False)
    launcher = setup.cli("launch.toml", runs=[entry], full=True)
    server = setup.cli("serve.toml", runs=[], full=False)  # no key, default root, defaults

    status, out = await launcher.run("launch", RUN)
    assert status == 0, out
    setup.serve = await server.start("serve")
    await wait_for(setup.ended, 90, what=f"the run to end:\n{setup.logs()}")
    await setup.stop_serve()

    assert setup.checked("running") or setup.checked("done")
    [terminal] = [t for t in setup.texts() if "outcome" in t]
    assert "done (completed)" in terminal
    assert "kept running by policy (destroy_on_done=false" in terminal
    assert fake_vast.calls("DELETE") == [] and INSTANCE in fake_vast.instances
    status, out = await server.run("runs")  # a one-shot command from that shell knows it too
    assert status == 0 and " done 1/1 20/20 " in out, out


@pytest.mark.slow
async def test_an_entry_edited_while_serve_runs_is_applied_on_sighup_and_logged(
    setup: Setup, fake_vast: FakeVast
) -> None:
    entry = setup.run_entry(steps=20, gated=True)
    server = setup.cli("serve.toml", runs=[entry], full=True)
    status, out = await server.run("launch", RUN)
    assert status == 0, out
    setup.serve = await server.start("serve")
    await wait_for(lambda: setup.checked("running"), 120, what="a check that saw it running")

    setup.cli("serve.toml", runs=[{**entry, "destroy_on_done": False}], full=True)
    assert setup.serve is not None
    setup.serve.send_signal(signal.SIGHUP)
    await wait_for(
        lambda: "settings changed in" in server.log_text(), 60, what="the change to be logged"
    )
    setup.gate.touch()  # only now may the run end
    await wait_for(setup.ended, 90, what="the run to end")
    await setup.stop_serve()

    assert f"{RUN}: settings changed in" in server.log_text()
    assert "destroy_on_done; applied" in server.log_text()
    [terminal] = [t for t in setup.texts() if "outcome" in t]
    assert "kept running by policy (destroy_on_done=false" in terminal
    assert fake_vast.calls("DELETE") == []
    [(stored,)] = db_rows(setup.db, "SELECT settings FROM runs")
    assert json.loads(stored)["run"]["destroy_on_done"] is False  # a restart keeps it


@pytest.mark.slow
async def test_a_run_whose_settings_nobody_knows_is_an_alert_not_a_silent_default(
    setup: Setup,
) -> None:
    launcher = setup.cli("launch.toml", runs=[setup.run_entry(steps=3)], full=True)
    server = setup.cli("serve.toml", runs=[], full=False)
    status, out = await launcher.run("launch", RUN)
    assert status == 0, out
    conn = sqlite3.connect(setup.db)  # as stored by a sleepwatch from before settings
    with conn:
        conn.execute("UPDATE runs SET settings = NULL")
    conn.close()

    setup.serve = await server.start("serve")
    await wait_for(
        lambda: any("settings unknown" in t for t in setup.texts()), 60, what="the alert"
    )
    await setup.stop_serve()

    [alert] = [t for t in setup.texts() if "settings unknown" in t]
    assert "no settings were stored with it at launch" in alert
    assert "watched with the defaults" in alert and "destroy_on_done=true" in alert


async def test_a_relaunch_stores_the_settings_of_the_file_it_was_launched_with(
    tmp_path: Path,
) -> None:
    # A local run through the real CLI: the second launch's file says destroy_on_done=false,
    # and that (not the first launch's stored settings) is what the run keeps.
    run_dir = tmp_path / "runs" / RUN
    entry = {
        "name": RUN,
        "local": True,
        "run_dir": run_dir,
        "command": f"{sys.executable} -c pass",
        "heartbeat_s": 0.3,
        "max_attempts": 1,
    }
    sections = {"watcher": {"state_dir": tmp_path / "state", "python": sys.executable}}
    config = write_config(tmp_path / "sleepwatch.toml", sections, [entry])
    db = tmp_path / "state" / "sleepwatch.sqlite3"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bot.app", "--config", str(config), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603

    def settings() -> dict[str, Any]:
        [(stored,)] = db_rows(db, "SELECT settings FROM runs")
        doc: dict[str, Any] = json.loads(stored)["run"]
        return doc

    first = await asyncio.to_thread(cli, "launch", RUN)
    assert first.returncode == 0, first.stderr
    assert settings()["destroy_on_done"] is True
    state = run_dir / "state.json"
    await wait_for(lambda: b'"done"' in state.read_bytes(), 30, what="the first run to end")
    pid = json.loads(state.read_text())["pid"]
    await wait_for(lambda: process_gone(pid), 30, what="its supervisor to exit")

    write_config(config, sections, [{**entry, "destroy_on_done": False}])
    second = await asyncio.to_thread(cli, "launch", RUN, "--replace")
    assert second.returncode == 0, second.stderr
    assert settings()["destroy_on_done"] is False
