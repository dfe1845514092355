"""Background tasks that say when they die: the service's loops (outbox sender, heartbeat,
rescan, store notices, wait channels) and `serve`'s chat front end (core/cli.py) are started
through `log_if_failed`, so a task that stops with an error leaves a line in the log.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def log_if_failed(task: asyncio.Task[None], what: str) -> asyncio.Task[None]:
    """A background task that dies must say so: otherwise it is gone without a trace."""

    def report(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("%s stopped: %r", what, done.exception())

    task.add_done_callback(report)
    return task
