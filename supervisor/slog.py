"""The supervisor's own log lines (RUN_DIR/supervisor.log): UTC time, then the message.

Built by supervisor.__main__ and handed to the runner; every supervisor message goes through it.
"""

from __future__ import annotations

import os
import sys
from typing import IO, List

from .fsutil import open_private
from .timeutil import iso_z, utcnow


class Logger:
    def __init__(self, streams: List[IO[str]]) -> None:
        self.streams = streams

    def __call__(self, message: str) -> None:
        line = "%s %s\n" % (iso_z(utcnow()), message)
        for stream in self.streams:
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):
                continue


def foreground_logger(path: str) -> Logger:
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)
    return Logger([sys.stderr, os.fdopen(fd, "a", encoding="utf-8")])


def daemon_logger() -> Logger:
    return Logger([sys.stderr])  # the daemon's stderr is RUN_DIR/supervisor.log
