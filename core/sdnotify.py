"""systemd's notify protocol, in the standard library: one AF_UNIX datagram per message to the
socket named by $NOTIFY_SOCKET (a path, or `@name` for the abstract namespace).

`serve` sends READY=1 once its loop runs, WATCHDOG=1 at each heartbeat of that loop (so a
hung loop misses `WatchdogSec` and systemd restarts it), and STOPPING=1 on its way out. Built
by the composition root (core/cli.py) from the environment; with no $NOTIFY_SOCKET (not under
systemd, or not Type=notify) every call does nothing. A send that fails is logged once and
never raised: the watching must not stop because systemd's socket went away."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SdNotifier:
    def __init__(self, address: str | None) -> None:
        self._address = _address(address) if address else None
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SdNotifier:
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @staticmethod
    def watchdog_s(environ: Mapping[str, str]) -> float | None:
        """The watchdog interval systemd expects pings within (WATCHDOG_USEC), or None."""
        text = environ.get("WATCHDOG_USEC", "")
        return int(text) / 1e6 if text.isdigit() and int(text) > 0 else None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str = "watching") -> bool:
        return self.send(f"READY=1\nSTATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def send(self, message: str) -> bool:
        """One datagram; True if it was sent."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(1.0)
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:
            if not self._failed:
                log.warning("sd_notify to systemd failed: %s", exc)
            self._failed = True
            return False
        if self._failed:
            log.warning("sd_notify to systemd works again")
        self._failed = False
        return True


def _address(text: str) -> str:
    """`@name` is Linux's abstract namespace: a leading NUL byte on the wire."""
    return "\0" + text[1:] if text.startswith("@") else text
