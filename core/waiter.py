"""The immediate channel: a watch on the host's supervisor session (core/supervisor_session.py)
when it is up, else one long-lived `supervisor wait` exec per run, so a finished, failed
or silent trainer is heard in seconds instead of at the next (maybe 30 minute) tick. If the
channel breaks (any error, an unreadable answer included), it backs off, bounded and jittered,
and tries again; polling by cadence carries on regardless. Service restarts a waiter whose
task dies anyway.

One RunWaiter per live run, started (and restarted when its task dies) by core.service; it wakes
the run's scheduled check (CheckScheduler.wake) so Watcher.check runs at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from core.errors import SleepwatchError, TransportError
from core.models import RunRecord
from core.ports import Transport
from core.supervisor_client import SupervisorClient
from core.supervisor_session import SessionHub
from core.vocab import is_terminal

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
BACKOFF_INITIAL_S = 5.0
BACKOFF_MAX_S = 300.0


def backoff_s(failures: int, jitter: float) -> float:
    """Seconds to wait after `failures` failures in a row: doubling from 5 s, at most 300 s,
    scaled by a jitter in [0, 1) to between half and all of it (many runs, one host)."""
    base = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2.0 ** min(max(failures, 1) - 1, 16))
    return base * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))


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
        jitter: Callable[[], float] = random.random,
        sessions: SessionHub | None = None,
    ) -> None:
        self.record = record
        # with `sessions`, each wait is a watch on the host's session, by exec when it is down
        self.client = SupervisorClient(
            transport, python, remote_root, timeout_s + 30, sessions=sessions
        )
        self.quiet_s = quiet_s
        self.timeout_s = timeout_s
        self.wake = wake
        self.sleep = sleep
        self.jitter = jitter

    async def run(self) -> None:
        # what the watcher last stored: a first answer that differs from it (the run finished,
        # or a new attempt started, while the watcher was down) is news too
        status, attempt = self.record.status, self.record.attempt
        quiet_armed = True
        quiet_spoke_at: str | None = None  # the trainer's last output when "quiet" was heard
        failures = 0
        while True:
            try:
                answer = await self.client.wait(
                    self.record.run_dir,
                    status=status,
                    attempt=attempt,
                    quiet_s=self.quiet_s if quiet_armed else None,
                    timeout_s=self.timeout_s,
                )
            except Exception as exc:  # whatever the instance answers, the channel lives on
                failures += 1
                if failures == 1 and isinstance(exc, TransportError):
                    # the connection broke: a check now tells a blip from a lost instance
                    self.wake(self.record.name)
                log.debug("%s: wait channel broke (%s); polling carries on", self.record.name, exc)
                await self.sleep(backoff_s(failures, self.jitter()))
                continue
            failures = 0
            changed = (answer.status, answer.attempt) != (status, attempt)
            status, attempt = answer.status, answer.attempt
            if answer.reason == "quiet":
                # heard once; re-armed by the next change, or once the trainer has printed
                # again (seen in a later answer): its next silence is news of its own
                quiet_armed, quiet_spoke_at = False, answer.spoke_at
                self.wake(self.record.name)
            elif changed:
                quiet_armed = True
                self.wake(self.record.name)
            elif not quiet_armed and answer.spoke_at != quiet_spoke_at:
                quiet_armed = True
            if is_terminal(status):
                return
            if answer.reason == "missing":
                await self.sleep(5.0)


async def keep_waiting(
    record: RunRecord,
    make: Callable[[RunRecord], RunWaiter],
    reread: Callable[[str], Awaitable[RunRecord | None]],
    *,
    sleep: Sleep,
    jitter: Callable[[], float],
    restarts: dict[str, int],
) -> None:
    """Run the run's wait channel (`make(record).run()`) until the run ends; a channel that
    dies (a bug, an error nobody foresaw) is logged, counted in `restarts` and started again
    after a bounded, jittered backoff, from what the store holds now (`reread`)."""
    failures = 0
    while True:
        try:
            await make(record).run()
            return
        except Exception as exc:
            failures += 1
            delay_s = backoff_s(failures, jitter())
            log.warning(
                "%s: wait channel died (%r); restarting it in %.0f s", record.name, exc, delay_s
            )
            restarts[record.name] = restarts.get(record.name, 0) + 1
        await sleep(delay_s)
        try:
            record = await reread(record.name) or record
        except SleepwatchError as exc:  # a locked or full store: try again after a backoff
            log.warning("%s: wait channel cannot re-read its run: %s", record.name, exc)
            continue
        if not record.live or record.ended_at is not None:
            return
