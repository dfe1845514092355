"""How a running `serve` learns what changed outside it: another process's commits to the
store (`sleepwatch launch`, `teardown` or `extend` from another shell: the file's data version,
polled twice a second) and an edited config file (SIGHUP, and every rescan).

Both loops are started by core.service.Service.start as background tasks. A change of data
version asks for a rescan at once, so a run launched elsewhere is looked at within a second,
not at the next periodic rescan; the rescan re-reads the config file, learns every stored run's
settings (core.settings) and watches a live run the scheduler does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from core.config import Config
from core.errors import ConfigError
from core.models import RunRecord
from core.scheduling import CheckScheduler
from core.settings import SettingsBook
from core.store import Store

log = logging.getLogger(__name__)

NOTICE_POLL_S = 0.5  # how often the store is asked whether another process wrote to it


async def hear_other_processes(
    store: Store, seen: int, stop: asyncio.Event, changed: Callable[[], None]
) -> None:
    """Call `changed` whenever the store's data version differs from the last one read
    (`seen` at first), until `stop` is set. A failing read is skipped: the periodic rescan
    still runs."""
    while not stop.is_set():
        await asyncio.sleep(NOTICE_POLL_S)
        try:
            version = await store.data_version()
        except Exception:  # locked or failing: the periodic rescan still runs
            log.debug("reading the store's data version failed", exc_info=True)
            continue
        if version != seen:
            changed()
        seen = version


class Rescan:
    """Serve's rescan: at once when asked (`request`: another process's commit, SIGHUP), else
    every `every_s`. A config file that does not load keeps the settings in use (said once per
    error); a store briefly locked is retried at the next round."""

    def __init__(
        self,
        store: Store,
        settings: SettingsBook,
        scheduler: CheckScheduler,
        watch: Callable[[RunRecord], None],
        reload_config: Callable[[], Config] | None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.scheduler = scheduler
        self.watch = watch
        self.reload_config = reload_config
        self._now = asyncio.Event()
        self._reload_error: str | None = None

    def request(self) -> None:
        self._now.set()

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await self._now.wait()
            self._now.clear()
            try:
                await self._reload()
                records = await self._news()
                await self.settings.learn(records)
            except Exception:  # the store may be briefly locked; the next round retries
                log.exception("rescan of the store failed")
                continue
            for record in records:
                if record.live and not self._known(record.name):
                    log.info("%s: launched from another process; watching it now", record.name)
                    self.watch(record)

    async def _news(self) -> list[RunRecord]:
        """The live runs launched (or relaunched) since they were learned, or not scheduled:
        only their rows are read in full (every 30 s, 5,000 full rows held the loop ~0.3 s)."""
        keys = await self.store.live_run_keys()  # never every run ever stored
        fresh = [
            name
            for name, launched_at in keys
            if not self.settings.knows(name, launched_at) or not self._known(name)
        ]
        return await self.store.runs_named(fresh) if fresh else []

    def _known(self, name: str) -> bool:
        return self.scheduler.next_run_at(name) is not None or self.scheduler.busy(name)

    async def _reload(self) -> None:
        if self.reload_config is None:
            return
        try:
            fresh = await asyncio.to_thread(self.reload_config)
        except ConfigError as exc:  # keep the settings in use; say so once per error
            if str(exc) != self._reload_error:
                log.error("config file not applied: %s", exc)
            self._reload_error = str(exc)
            return
        self._reload_error = None
        await self.settings.reload(fresh)
