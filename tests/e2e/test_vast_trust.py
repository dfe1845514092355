"""Issue 11, "a run is gone only when the provider says so clearly", through the real
`sleepwatch` CLI (a subprocess: the whole composition root) against the fake Vast API on
127.0.0.1 and the real sshd fixture as the instance; the supervisor really runs over SSH.

- A Vast answer of HTTP 200 whose body is not the instance object (an HTML page, `{}`,
  truncated JSON) is a transient provider error, never "instance gone": no false "destroyed",
  and a teardown always sends its DELETE and reads "gone" twice in a row after it.
- "Instance lost" needs SSH failing AND the provider saying gone/exited on two checks in a row.
- `sleepwatch teardown` reaches the DELETE whatever the instance answers to `ctl stop`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.vast_helpers import DPH, INSTANCE, RUN, run_dir, wait_for_status
from tests.fixtures.fake_telegram import callback_update, message_update
from tests.fixtures.fake_vast import Answer
from tests.reliability.helpers import db_rows, write_config

if TYPE_CHECKING:
    from tests.fixtures.fake_telegram import FakeTelegram
    from tests.fixtures.fake_vast import FakeVast
    from tests.fixtures.sshd import SshdServer

CLI_TIMEOUT_S = 120.0  # a loaded CI machine; the ctl-stop bound (15 s) is far below
EXEC_TIMEOUT_S = 300  # the SSH exec bound: a hung `ctl stop` must not be waited out this long
CHAT = 5150

UNREADABLE = {
    "html": "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
    "empty-object": "{}",
    "truncated-json": '{"instances": {"id": 4242, "actual_status": "runn',
}

# `[watcher] python` for the ctl faults: python itself, unless the mode file arms a fault for
# `supervisor ctl ... stop`. hang: never answers; garbage: not JSON; huge: 50 MB of output;
# exit1: an error exit; deep: JSON nested 100,000 deep; drop: the SSH session dies mid-answer.
CTL_WRAPPER = """#!{python}
import os, signal, sys, time
mode_file = {mode_file!r}
args = sys.argv[1:]
is_stop = "supervisor" in args and "ctl" in args and args[-1:] == ["stop"]
mode = open(mode_file).read().strip() if os.path.exists(mode_file) else ""
if is_stop and mode == "hang":
    time.sleep(3600)
if is_stop and mode == "garbage":
    sys.stdout.write("Welcome to Ubuntu!\\n\\x1b[31mnot json at all")
    sys.exit(0)
if is_stop and mode == "huge":
    chunk = "x" * (1 << 20)
    for _ in range(50):
        sys.stdout.write(chunk)
    sys.exit(0)
if is_stop and mode == "exit1":
    sys.stderr.write("Traceback: boom\\n")
    sys.exit(1)
if is_stop and mode == "deep":
    sys.stdout.write("[" * 100000 + "]" * 100000)
    sys.exit(0)
if is_stop and mode == "drop":
    sys.stdout.write('{{"ok": tr')
    sys.stdout.flush()
    pid = os.getppid()
    while pid > 1:  # the nearest sshd ancestor: this connection's session process
        if open("/proc/%d/comm" % pid).read().startswith("sshd"):
            os.kill(pid, signal.SIGKILL)
            break
        pid = int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[1])
    time.sleep(5)
    sys.exit(0)
os.execv({python!r}, [{python!r}, *args])
"""


def config_file(
    tmp_path: Path,
    sshd: SshdServer,
    fake: FakeVast,
    *,
    python: str,
    telegram: dict[str, Any] | None = None,
) -> Path:
    trainer = tmp_path / "train.py"
    trainer.write_text(
        "import time\nfor s in range(1, 601):\n    print(f'step {s}/600', flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    return write_config(
        tmp_path / "sleepwatch.toml",
        {
            "watcher": {
                "state_dir": tmp_path / "state",
                "python": python,
                "remote_root": tmp_path / "remote",
            },
            "cadence": {"scale": 1 / 60},
            "thresholds": {"unreachable_checks": 2, "heartbeat_stale": "2d", "stall_after": "2d"},
            "ssh": {"connect_timeout": 3, "exec_timeout": EXEC_TIMEOUT_S},
            "vast": {"api_base": fake.base_url},
            **({"telegram": telegram} if telegram else {}),
        },
        [
            {
                "name": RUN,
                "instance_id": INSTANCE,
                "user": sshd.user,
                "key": sshd.key_path,
                "run_dir": run_dir(tmp_path),
                "command": f"{sys.executable} {trainer}",
                "env": {"PYTHONUNBUFFERED": "1"},
                "heartbeat_s": 0.3,
                "max_attempts": 1,
            }
        ],
    )


async def sleepwatch(config: Path, fake: FakeVast, *args: str) -> tuple[int, str, str]:
    """The real entry point as a subprocess; the fake Vast API keeps serving meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLEEPWATCH_", "VAST_"))}
    env["VAST_API_KEY"] = fake.api_key
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.app",
        "--config",
        str(config),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        said = (out + err).decode(errors="replace")[-2000:]
        raise AssertionError(f"sleepwatch {' '.join(args)} did not end: {said}") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def stop_remote(tmp_path: Path) -> None:
    """The supervisor is a daemon on this machine that outlives sshd: stop it directly."""
    import subprocess

    if not (run_dir(tmp_path) / "state.json").exists():
        return
    argv = [sys.executable, "-m", "supervisor", "ctl", "--run-dir", str(run_dir(tmp_path))]
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "remote"))
    subprocess.run([*argv, "stop"], env=env, capture_output=True, timeout=30, check=False)  # noqa: S603


@pytest.fixture
async def launched(tmp_path: Path, sshd: SshdServer, fake_vast: FakeVast) -> Any:
    """`await launched(python=...)`: the run launched by the CLI on the fake instance, training."""
    configs: list[Path] = []

    async def go(python: str = sys.executable, telegram: dict[str, Any] | None = None) -> Path:
        fake_vast.add_instance(INSTANCE, ssh_host=sshd.host, ssh_port=sshd.port, dph_total=DPH)
        config = config_file(tmp_path, sshd, fake_vast, python=python, telegram=telegram)
        configs.append(config)
        rc, _, err = await sleepwatch(config, fake_vast, "launch", RUN)
        assert rc == 0, err
        await wait_for_status(tmp_path, "running")
        return config

    try:
        yield go
    finally:
        await asyncio.to_thread(stop_remote, tmp_path)


def deletes(fake: FakeVast) -> int:
    return len(fake.calls("DELETE"))


def run_row(tmp_path: Path) -> tuple[Any, ...]:
    db = tmp_path / "state" / "sleepwatch.sqlite3"
    [row] = db_rows(db, "SELECT live, teardown FROM runs WHERE name = ?", (RUN,))
    return row


# -- an unreadable answer is never "gone" ----------------------------------------------------


@pytest.mark.parametrize("body", list(UNREADABLE.values()), ids=list(UNREADABLE))
async def test_teardown_sends_its_delete_when_vast_answers_200_with_an_unreadable_body(
    launched: Any, fake_vast: FakeVast, tmp_path: Path, body: str
) -> None:
    config = await launched()
    fake_vast.script(Answer(200, body), Answer(200, body), method="GET")

    rc, out, err = await sleepwatch(config, fake_vast, "teardown", RUN)

    assert rc == 0, err
    assert deletes(fake_vast) == 1  # today: no DELETE at all, and "destroyed" said anyway
    assert INSTANCE not in fake_vast.instances
    gets_after = [r for r in fake_vast.requests[-2:] if r.method == "GET"]
    assert len(gets_after) == 2  # "gone" read twice in a row after the DELETE
    assert f"{INSTANCE} destroyed" in out
    assert run_row(tmp_path) == (0, "destroyed")


@pytest.mark.parametrize("body", list(UNREADABLE.values()), ids=list(UNREADABLE))
async def test_an_unreadable_vast_answer_while_ssh_fails_is_not_a_lost_instance(
    launched: Any, fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path, body: str
) -> None:
    config = await launched()
    sshd.stop()
    fake_vast.garbled_reads = body

    for _ in range(3):
        rc, out, err = await sleepwatch(config, fake_vast, "check", RUN)
        assert rc == 0, err

    assert deletes(fake_vast) == 0
    assert INSTANCE in fake_vast.instances
    assert "destroyed" not in out
    assert run_row(tmp_path) == (1, None)  # still watched; nothing was torn down


# -- lost needs two checks --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["exited", "offline", "404", "empty"])
async def test_a_lost_instance_needs_ssh_failing_and_the_provider_saying_so_twice(
    launched: Any, fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path, how: str
) -> None:
    config = await launched()
    sshd.stop()
    if how in ("404", "empty"):
        fake_vast.gone_answer = how
        del fake_vast.instances[INSTANCE]
    else:
        fake_vast.go_offline(INSTANCE, how)

    rc, _, err = await sleepwatch(config, fake_vast, "check", RUN)
    assert rc == 0, err
    assert deletes(fake_vast) == 0  # one answer is never enough
    assert run_row(tmp_path) == (1, None)

    rc, out, err = await sleepwatch(config, fake_vast, "check", RUN)
    assert rc == 0, err
    assert deletes(fake_vast) == 1  # the second one is: destroyed by the fail policy
    assert INSTANCE not in fake_vast.instances
    assert run_row(tmp_path) == (0, "destroyed")


async def test_a_reachable_check_between_two_gone_answers_starts_the_count_again(
    launched: Any, fake_vast: FakeVast, sshd: SshdServer, tmp_path: Path
) -> None:
    config = await launched()
    sshd.stop()
    fake_vast.go_offline(INSTANCE, "exited")
    await sleepwatch(config, fake_vast, "check", RUN)
    sshd.start()
    fake_vast.instances[INSTANCE]["actual_status"] = "running"
    await sleepwatch(config, fake_vast, "check", RUN)
    sshd.stop()
    fake_vast.go_offline(INSTANCE, "exited")

    rc, _, err = await sleepwatch(config, fake_vast, "check", RUN)

    assert rc == 0, err
    assert deletes(fake_vast) == 0
    assert run_row(tmp_path) == (1, None)


# -- a compromised instance cannot block its own teardown --------------------------------------


def write_ctl_wrapper(tmp_path: Path) -> tuple[Path, Path]:
    """(wrapper python, mode file): write a mode to the file to arm a `ctl stop` fault."""
    mode_file = tmp_path / "ctl-mode"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(CTL_WRAPPER.format(python=sys.executable, mode_file=str(mode_file)))
    wrapper.chmod(0o755)
    return wrapper, mode_file


@pytest.mark.parametrize("mode", ["hang", "garbage", "huge", "exit1", "deep", "drop"])
async def test_teardown_reaches_the_delete_whatever_the_instance_answers_to_ctl_stop(
    launched: Any, fake_vast: FakeVast, tmp_path: Path, mode: str
) -> None:
    wrapper, mode_file = write_ctl_wrapper(tmp_path)
    config = await launched(python=str(wrapper))
    mode_file.write_text(mode)

    rc, out, err = await sleepwatch(config, fake_vast, "teardown", RUN)

    assert rc == 0, err
    assert deletes(fake_vast) == 1
    assert INSTANCE not in fake_vast.instances
    assert f"{INSTANCE} destroyed" in out
    assert run_row(tmp_path) == (0, "destroyed")


async def until(condition: Any, what: str, timeout_s: float = CLI_TIMEOUT_S) -> Any:
    for _ in range(int(timeout_s / 0.1)):
        found = condition()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("mode", ["hang", "deep"])
async def test_chat_teardown_under_a_running_serve_reaches_the_delete_whatever_ctl_stop_does(
    launched: Any, fake_vast: FakeVast, fake_telegram: FakeTelegram, tmp_path: Path, mode: str
) -> None:
    wrapper, mode_file = write_ctl_wrapper(tmp_path)
    telegram = {"chat_ids": [CHAT], "api_base": fake_telegram.base_url}
    config = await launched(python=str(wrapper), telegram=telegram)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLEEPWATCH_", "VAST_"))}
    env |= {"VAST_API_KEY": fake_vast.api_key, "SLEEPWATCH_TELEGRAM_TOKEN": fake_telegram.token}
    log = (tmp_path / "serve.log").open("wb")
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.app", "--config", str(config), "serve",
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await until(lambda: "getUpdates" in fake_telegram.methods(), "serve polling")
        mode_file.write_text(mode)
        now = int(time.time())
        fake_telegram.push_update(message_update(CHAT, f"/teardown {RUN}", date=now))

        def prompt() -> dict[str, Any] | None:
            return next((m for m in fake_telegram.sent if m.get("reply_markup")), None)

        asked = await until(prompt, "the confirmation prompt")
        markup = asked["reply_markup"]
        markup = json.loads(markup) if isinstance(markup, str) else markup
        confirm = markup["inline_keyboard"][0][0]["callback_data"]
        fake_telegram.push_update(callback_update(CHAT, confirm, message_id=asked["message_id"]))

        def settled() -> str | None:
            texts = [str(e.get("text", "")) for e in fake_telegram.edits]
            return next((t for t in texts if "destroyed" in t), None)

        text = await until(settled, "the teardown's answer in the chat")
        assert f"{INSTANCE} destroyed" in text and "NOT destroyed" not in text
        assert deletes(fake_vast) == 1 and INSTANCE not in fake_vast.instances
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(serve.wait(), 20)
            except TimeoutError:
                serve.kill()
                await serve.wait()
        log.close()
