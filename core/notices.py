"""How a running `serve` hears that another process wrote to the store (`sleepwatch launch`,
`teardown` or `extend` from another shell): the file's data version, polled twice a second.

Started by core.service.Service.start as a background task; a change sets the service's
rescan event, so a run launched elsewhere is looked at within a second, not at the next 30 s
rescan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

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
