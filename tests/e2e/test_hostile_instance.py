"""Issue 11, "the watcher is never blind, and never disarms the dead-man switch by accident":
a real sshd as the instance, whose login shell is noisy or whose supervisor is compromised,
watched by the serve composition (Service) over real SSH.

A compromised supervisor is the `[watcher] python` replaced by a wrapper: for a subcommand
that has an answer script in its folder it runs that script instead (after the real command
when the script says so), for every other it is the real Python. It offers no `session` (as
an old supervisor would not): the watcher reads it by exec, the fallback these answers reach.
A hostile session is tests/e2e/test_supervisor_session.py's."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from core.config import Config
from core.store import Store
from tests.e2e.test_watch_ssh import Harness, launched, make_config, provider_for
from tests.supervisor.test_deadman import FakeVast

if TYPE_CHECKING:
    from tests.fixtures.sshd import SshdServer

KEY = "instance-scoped-key-42"
NOISE = """echo "Welcome to your vast.ai container"
echo '{"probe": 1, "note": "a JSON-looking line from .bashrc"}'
printf 'pyenv: shell integration not enabled\\n'
"""


def remote_home(tmp_path: Path, bashrc: str) -> Path:
    """The remote user's home, with the .bashrc that bash runs before every SSH command."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".bashrc").write_text(bashrc)
    return home


# The compromised supervisor. ANSWERS/<subcommand>.py, when present, runs instead of the real
# command; ANSWERS/<subcommand>.after.py runs after the real one, whose output is dropped.
WRAPPER = """#!{python}
import os, subprocess, sys
answers = {answers!r}
args = sys.argv[1:]
if "session" in args:
    sys.exit(2)
subs = ("probe", "ctl", "wait", "start", "ack")
sub = next((a for a in args if a in subs), "")
instead = os.path.join(answers, sub + ".py")
after = os.path.join(answers, sub + ".after.py")
if os.path.exists(after):
    subprocess.run([{python!r}, *args], stdout=subprocess.DEVNULL, check=False)
    exec(open(after).read())
    sys.exit(0)
if os.path.exists(instead):
    exec(open(instead).read())
    sys.exit(0)
os.execv({python!r}, [{python!r}, *args])
"""
MARK = "@@sleepwatch-answer-v1@@"


@pytest.fixture
def vast() -> Iterator[tuple[FakeVast, str]]:
    fake = FakeVast([])
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def with_deadman(config: Config, api: str, *, python: str | None = None) -> Config:
    """The run with its dead-man switch armed and no teardown on done: the switch is then the
    only thing that would destroy the instance."""
    deadman = {
        "enabled": True,
        "ack_timeout_s": 4,
        "watcher_silence_s": 3600,
        "api_base": api,
        "retry_backoff_s": 0.01,
    }
    run = config.runs[0].model_copy(
        update={"supervisor": {"deadman": deadman}, "destroy_on_done": False}
    )
    watcher = config.watcher.model_copy(update={"python": python or config.watcher.python})
    return config.model_copy(update={"runs": [run], "watcher": watcher})


def compromised_python(tmp_path: Path) -> tuple[str, Path]:
    answers = tmp_path / "answers"
    answers.mkdir()
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(WRAPPER.format(python=sys.executable, answers=str(answers)))
    wrapper.chmod(0o755)
    return str(wrapper), answers


def run_dir(config: Config) -> Path:
    return Path(config.runs[0].run_dir)


async def wait_for(path: Path, timeout_s: float = 60) -> None:
    for _ in range(int(timeout_s * 10)):
        if path.exists():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


async def test_shell_noise_before_the_answer_is_skipped_and_the_end_is_acked_once_stored(
    tmp_path: Path, sshd: SshdServer, vast: tuple[FakeVast, str]
) -> None:
    fake, api = vast
    home = remote_home(tmp_path, NOISE)
    sshd.set_env(HOME=str(home), CONTAINER_ID="4242", CONTAINER_API_KEY=KEY)
    config = with_deadman(make_config(tmp_path, sshd, steps=10), api)
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    try:
        await launched(h, store)
        service = h.service(store)
        await service.start()
        try:
            await asyncio.wait_for(service.finished["llama-ft"].wait(), 60)
            assert await service.drain_outbox()
        finally:
            await service.stop()
        final = await store.get_run("llama-ft")
        await wait_for(run_dir(config) / "deadman.json")
    finally:
        await store.close()
        await h.pool.close()
    statuses = [line.split()[1] for line in h.lines]
    assert "invalid" not in statuses, h.lines
    assert statuses[-1] == "done"
    assert final is not None and final.status == "done"
    assert h.kinds()[-1] == "terminal"
    stored_ack = json.loads((run_dir(config) / "watcher_stored.json").read_text())
    assert (stored_ack["status"], stored_ack["attempt"]) == ("done", 2)
    report = json.loads((run_dir(config) / "deadman.json").read_text())
    assert report["fired"] is False, report
    assert fake.requests == []


async def test_a_watcher_that_cannot_read_the_end_leaves_the_dead_man_switch_armed(
    tmp_path: Path, sshd: SshdServer, vast: tuple[FakeVast, str]
) -> None:
    """The probe really runs (and really writes its `--ack`), but its answer is garbage: the
    watcher never stores the end, so the switch must fire and destroy the instance."""
    fake, api = vast
    sshd.set_env(CONTAINER_ID="4242", CONTAINER_API_KEY=KEY)
    python, answers = compromised_python(tmp_path)
    (answers / "probe.after.py").write_text(f"print({MARK!r}); print('garbage')\n")
    config = with_deadman(make_config(tmp_path, sshd, steps=10), api, python=python)
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    try:
        await launched(h, store)
        service = h.service(store)
        await service.start()
        try:
            await wait_for(run_dir(config) / "deadman.json")
        finally:
            await service.stop()
    finally:
        await store.close()
        await h.pool.close()
    assert set(line.split()[1] for line in h.lines) == {"invalid"}
    assert json.loads((run_dir(config) / "watcher_ack.json").read_text())["status"] == "done"
    report = json.loads((run_dir(config) / "deadman.json").read_text())
    assert report["fired"] is True, report
    deletes = [r[:2] for r in fake.requests if r[0] == "DELETE"]
    assert deletes == [("DELETE", "/api/v0/instances/4242/")]


async def test_a_supervisor_package_in_the_login_directory_is_never_run(
    tmp_path: Path, sshd: SshdServer
) -> None:
    home = remote_home(tmp_path, "cd ~\n")  # the login directory is the home
    hostile = home / "supervisor"
    hostile.mkdir(parents=True)
    pwned = tmp_path / "pwned"
    (hostile / "__init__.py").write_text("")
    (hostile / "__main__.py").write_text(
        f"open({str(pwned)!r}, 'a').write('ran\\n'); print('{{}}')\n"
    )
    sshd.set_env(HOME=str(home))
    h = Harness(make_config(tmp_path, sshd, steps=10), provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    try:
        await launched(h, store)
        service = h.service(store)
        await service.start()
        try:
            await asyncio.wait_for(service.finished["llama-ft"].wait(), 60)
        finally:
            await service.stop()
        final = await store.get_run("llama-ft")
    finally:
        await store.close()
        await h.pool.close()
    assert not pwned.exists()
    assert final is not None and final.status == "done"


FLOOD = "import sys\nfor _ in range(1024):\n    sys.stdout.buffer.write(b'x' * 65536)\n"
DEEP = f"print({MARK!r}); print('[' * 985 + ']' * 985)\n"


def crafted_probe(**state: object) -> str:
    doc = {
        "probe": 1,
        "at": "2026-11-28T03:00:00Z",
        "state": {
            "schema": 1,
            "run": "llama-ft",
            "status": "running",
            "attempt": 1,
            "max_attempts": 3,
            "heartbeat_at": "2026-11-28T03:00:00Z",
            **state,
        },
        "log": {"attempt": 1, "offset": 0, "next_offset": 10, "size": 10, "text": "step\n"},
        "gpus": [{"index": 0, "util_pct": "NaN", "mem_used_mb": 1e400, "mem_total_mb": 8e4}],
        "disk_free_mb": 1e400,
    }
    # json.dumps writes NaN and Infinity as Python's json reads them back
    text = json.dumps(doc).replace('"NaN"', "NaN")
    return f"print({MARK!r}); print({text!r})\n"


async def test_a_compromised_supervisor_cannot_bloat_crash_or_blind_the_watcher(
    tmp_path: Path, sshd: SshdServer
) -> None:
    python, answers = compromised_python(tmp_path)
    config = make_config(tmp_path, sshd, steps=400)
    config = config.model_copy(
        update={"watcher": config.watcher.model_copy(update={"python": python})}
    )
    h = Harness(config, provider_for(sshd), tmp_path)
    store = await Store.open(tmp_path / "state" / "db.sqlite3")
    service = h.service(store)
    try:
        record = await launched(h, store)
        probe = answers / "probe.py"

        # 64 MiB answered: read up to the cap only, then the command is ended
        probe.write_text(FLOOD)
        tracemalloc.start()
        try:
            assert await service.check("llama-ft") is not None
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB while reading"
        assert h.lines[-1].split()[1] == "invalid"
        alert = (await store.open_alerts("llama-ft"))["invalid_state"]
        assert "more than 4194304 bytes" in alert.message, alert.message

        # numbers no store or status line can hold: readings read as unknown, counts refused
        probe.write_text(crafted_probe(throughput=1e400))
        assert await service.check("llama-ft") is not None
        assert h.lines[-1].split()[1:] == ["running", "1/3", "-", "-", "-", "-", "llama-ft"]
        probe.write_text(crafted_probe(step=10**20))
        assert await service.check("llama-ft") is not None
        assert h.lines[-1].split()[1] == "invalid"

        # 985 levels deep from every command: no RecursionError anywhere
        for sub in ("probe", "ctl", "wait"):
            (answers / f"{sub}.py").write_text(DEEP)
        assert await service.check("llama-ft") is not None  # probe
        assert h.lines[-1].split()[1] == "invalid"
        view = await service.control.view("llama-ft", record.launched_at)  # /status
        assert "nests deeper" in view.tail[0]
        assert "stop FAILED" in await service.control.kill("llama-ft")  # ctl
        service.watch(record)  # the wait channel reads it, backs off, and lives on
        await asyncio.sleep(1.0)
        waiter = service._waiters["llama-ft"]
        assert not waiter.done()
        text = await service.control.teardown("llama-ft")  # /teardown
        assert "destroyed" in text, text
    finally:
        await service.stop()
        for sub in ("probe", "ctl", "wait"):
            (answers / f"{sub}.py").unlink(missing_ok=True)
        await store.close()
        await h.pool.close()
