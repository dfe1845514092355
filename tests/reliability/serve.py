"""`sleepwatch` as real processes (`python -m bot.app`) for the fault tests of the service
itself: a config on a given state dir, the fake Bot API, stdout and stderr kept apart in files,
and a small filesystem that can be filled to the last byte."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.reliability.helpers import CHAT_ID, HANG_GUARD_SLACK, write_config

if TYPE_CHECKING:
    from tests.fixtures.fake_telegram import FakeTelegram


@dataclass
class Proc:
    process: asyncio.subprocess.Process
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


class Sleepwatch:
    """The CLI on one config. `token` None: the fake Bot API's own token."""

    def __init__(
        self,
        tmp_path: Path,
        tg: FakeTelegram,
        state_dir: Path,
        *,
        heartbeat: float = 0.5,
        runs: list[dict[str, Any]] | None = None,
    ) -> None:
        self.tg = tg
        self.state_dir = state_dir
        self.db = state_dir / "sleepwatch.sqlite3"
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        self.config = write_config(
            tmp_path / "sleepwatch.toml",
            {
                "watcher": {
                    "state_dir": state_dir,
                    "python": sys.executable,
                    "heartbeat": heartbeat,
                },
                "telegram": {"chat_ids": [CHAT_ID], "api_base": tg.base_url},
            },
            runs or [],
        )
        self.started: list[Proc] = []

    def env(self, token: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "VAST_API_KEY"}
        env["SLEEPWATCH_TELEGRAM_TOKEN"] = token or self.tg.token
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def start(self, *args: str, token: str | None = None) -> Proc:
        number = len(self.started) + 1
        out, err = self.logs / f"{number:02d}.out", self.logs / f"{number:02d}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.app",
                "--config",
                str(self.config),
                *args,
                env=self.env(token),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        proc = Proc(process, out, err)
        self.started.append(proc)
        return proc

    async def run(self, *args: str, timeout_s: float = 60) -> tuple[int, str, str]:
        proc = await self.start(*args)
        code = await asyncio.wait_for(proc.process.wait(), timeout_s * HANG_GUARD_SLACK)
        return code, proc.stdout(), proc.stderr()

    def heartbeat(self) -> str:
        try:
            return (self.state_dir / "service.heartbeat").read_text()
        except OSError:
            return ""

    def log_text(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.iterdir())
        )


async def stop(proc: Proc, timeout_s: float = 30) -> int:
    if proc.process.returncode is None:
        proc.process.terminate()
    return await asyncio.wait_for(proc.process.wait(), timeout_s * HANG_GUARD_SLACK)


@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int) -> Iterator[Path]:
    """A real tmpfs of `size_mb` at `path` (needs root, or CAP_SYS_ADMIN); skipped, saying
    why, where mounting is not allowed."""
    path.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mount.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill the filesystem under `disk` to the last byte with one file; returns the file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
        try:
            os.write(fd, b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        else:
            raise AssertionError("the filesystem did not fill up")
    finally:
        os.close(fd)
    return filler
