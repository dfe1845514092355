"""The immediate channel: one long-lived `supervisor wait` exec per run, so a finished, failed
or silent trainer is heard in seconds instead of at the next (maybe 30 minute) tick. If the
channel breaks, it backs off and tries again; polling by cadence carries on regardless."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from core.errors import TransportError
from core.models import RunRecord
from core.ports import Transport
from core.ssh import remote_argv

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class RunWaiter:
    def __init__(
        self,
        record: RunRecord,
        transport: Transport,
        *,
        python: str,
        remote_root: str,
        quiet_s: float,
        timeout_s: float,
        wake: Callable[[str], None],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.record = record
        self.transport = transport
        self.python = python
        self.remote_root = remote_root
        self.quiet_s = quiet_s
        self.timeout_s = timeout_s
        self.wake = wake
        self.sleep = sleep

    def argv(self, status: str, attempt: int, quiet: bool) -> list[str]:
        args = ["wait", "--run-dir", self.record.run_dir, "--status", status]
        args += ["--attempt", str(attempt), "--timeout", f"{self.timeout_s:g}"]
        if quiet:
            args += ["--quiet", f"{self.quiet_s:g}"]
        return remote_argv(self.python, self.remote_root, args)

    async def run(self) -> None:
        # what the watcher last stored: a first answer that differs from it (the run finished,
        # or a new attempt started, while the watcher was down) is news too
        status, attempt = self.record.status, self.record.attempt
        quiet_armed = True
        failures = 0
        while True:
            argv = self.argv(status, attempt, quiet_armed)
            try:
                result = await self.transport.run(argv, timeout_s=self.timeout_s + 30)
                reason, new_status, new_attempt = _parse_wait(result.stdout)
            except (TransportError, ValueError, TypeError, AttributeError) as exc:
                failures += 1
                log.debug("%s: wait channel broke (%s); polling carries on", self.record.name, exc)
                await self.sleep(min(300.0, 5.0 * 2 ** min(failures, 6)))
                continue
            failures = 0
            changed = (new_status, new_attempt) != (status, attempt)
            status, attempt = new_status, new_attempt
            if reason == "quiet":
                quiet_armed = False  # heard once; re-armed by the next change
                self.wake(self.record.name)
            elif changed:
                quiet_armed = True
                self.wake(self.record.name)
            if status in ("done", "failed", "stopped"):
                return
            if reason == "missing":
                await self.sleep(5.0)


def _parse_wait(stdout: bytes) -> tuple[str, str, int]:
    """(reason, status, attempt) of one `supervisor wait` answer; ValueError/TypeError if odd."""
    doc = json.loads(stdout)
    state = doc.get("state") or {}
    if not isinstance(state, dict):
        raise TypeError(f"state is a {type(state).__name__}")
    attempt = state.get("attempt")
    return str(doc.get("reason")), str(state.get("status", "unknown")), int(attempt or 0)
