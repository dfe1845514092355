"""The service's own health: what `sleepwatch health` reads, and the alarms a running `serve`
raises about itself (the store's disk full, Telegram refusing the token).

`Heartbeat.beat` is called by the service every `heartbeat_s`. It writes the heartbeat file
(`{"at": ..., "problems": [...]}`), prints one loud line per minute on stderr while there is a
problem, and sends "disk full under the store" once per episode straight through the notifier:
a full disk cannot take the message into the outbox. `read_heartbeat` is the pure reading side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import SleepwatchError, StoreFull
from core.models import MessageKind, OutboundMessage
from core.ports import Clock, Notifier
from core.store import Store
from core.topics import Topic

log = logging.getLogger(__name__)

HEALTHY_WITHIN_S = 120.0
LOUD_EVERY_S = 60.0
FULL_CLEARED_S = 300.0  # writable this long after a full disk: the next one is a new episode


def stderr_line(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class HealthReport:
    healthy: bool
    reason: str  # what `sleepwatch health` prints when unhealthy; empty when healthy


def read_heartbeat(text: str | None, now: datetime, *, where: Path) -> HealthReport:
    """Healthy when the file was written within HEALTHY_WITHIN_S and lists no problem. Reads
    the older format too (the ISO time alone)."""
    if text is None:
        return HealthReport(False, f"no heartbeat at {where}")
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else {"at": text.strip()}
        beat = datetime.fromisoformat(str(doc["at"])).astimezone(UTC)
        problems = [str(p) for p in doc.get("problems", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return HealthReport(False, f"unreadable heartbeat at {where}")
    age_s = (now - beat).total_seconds()
    if age_s > HEALTHY_WITHIN_S:
        return HealthReport(False, f"last heartbeat {age_s:.0f}s ago")
    if problems:
        return HealthReport(False, "; ".join(problems))
    return HealthReport(True, "")


class Heartbeat:
    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        clock: Clock,
        *,
        file: Path | None,
        alarm: Callable[[str], None] = stderr_line,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._file = file
        self._alarm = alarm
        self._shouted_at: datetime | None = None
        self._full_alerted = False
        self._writable_since: datetime | None = None

    async def beat(self, problems: Mapping[str, str]) -> list[str]:
        """One heartbeat: try a write, alert, shout, write the file. Returns the problems."""
        now = self._clock()
        with contextlib.suppress(SleepwatchError):  # the failure is kept in store.write_error
            await self._store.set_meta("heartbeat_at", now.isoformat())
        found = list(problems.values())
        if self._store.write_error is not None:
            found.insert(0, f"store writes fail: {self._store.write_error}")
        await self._alert_disk_full(now)
        self._shout(now, found)
        await asyncio.to_thread(self._write, now, found)
        return found

    async def _alert_disk_full(self, now: datetime) -> None:
        """Once per episode: an episode ends only after FULL_CLEARED_S of writes that went
        through (on a full disk one write can still land in space SQLite already holds, and
        the next fails again: that is the same episode, not a second message)."""
        error = self._store.write_error
        if not isinstance(error, StoreFull):
            self._writable_since = self._writable_since or now
            if (now - self._writable_since).total_seconds() >= FULL_CLEARED_S:
                self._full_alerted = False
            return
        self._writable_since = None
        if self._full_alerted:
            return
        message = OutboundMessage(
            MessageKind.ALERT,
            "⛔ sleepwatch: disk full under its store",
            topic=Topic.STORE_BROKEN,
            loud=True,
            reasons=(
                str(error),
                "sleepwatch cannot record checks or messages until space is freed; "
                "messages already delivered are not sent again",
            ),
        )
        try:
            await self._notifier.deliver(message)
        except Exception as exc:  # tried again at the next beat
            log.warning("could not send the disk-full alert: %s", exc)
            return
        self._full_alerted = True

    def _shout(self, now: datetime, problems: list[str]) -> None:
        if not problems:
            self._shouted_at = None
            return
        if self._shouted_at is not None and (now - self._shouted_at).total_seconds() < LOUD_EVERY_S:
            return
        self._shouted_at = now
        self._alarm(f"sleepwatch: UNHEALTHY: {'; '.join(problems)}")

    def _write(self, now: datetime, problems: list[str]) -> None:
        if self._file is None:
            return
        doc = json.dumps({"at": now.isoformat(), "problems": problems})
        try:
            self._file.write_text(doc)
        except OSError:
            # A heartbeat that cannot be written must not look fresh: no file is unhealthy.
            with contextlib.suppress(OSError):
                self._file.unlink()
