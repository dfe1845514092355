"""The few exceptions sleepwatch raises; each builds its own message.

Raised by the adapters at their seams (store, SSH, provider, Telegram), by the config and by
launch; the watcher turns a transport error into a finding (never a crash), the CLI prints one
line and exits 2, the bot answers with the message.
"""

from __future__ import annotations

from collections.abc import Sequence


class SleepwatchError(Exception):
    """Root of every sleepwatch error. `permanent` says whether retrying can help."""

    permanent: bool = False


class ConfigError(SleepwatchError):
    """A configuration file or value is invalid; the message names the key."""

    permanent = True


class ProtocolError(SleepwatchError):
    """The supervisor answered something core cannot read (garbage, wrong schema)."""

    permanent = True


class TransportError(SleepwatchError):
    """An SSH (or local) exec or upload failed: unreachable host, timeout, dropped channel."""

    def __init__(self, host: str, reason: str, *, permanent: bool = False) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason
        self.permanent = permanent


class HostKeyMismatch(TransportError):
    """The host presented a key other than the one pinned/known for it. Never retried."""

    def __init__(self, host: str, reason: str = "host key changed") -> None:
        super().__init__(host, reason, permanent=True)


class DeliveryError(SleepwatchError):
    """A notification could not be delivered now; `retry_after_s` is the wait asked for.
    `credentials_refused`: the service refused our credentials (a wrong or revoked token):
    nothing can be delivered until they are fixed, so every message waits, none is skipped."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after_s: float | None = None,
        permanent: bool = False,
        credentials_refused: bool = False,
    ) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.permanent = permanent
        self.credentials_refused = credentials_refused


class ProviderError(SleepwatchError):
    """The cloud provider's API failed (HTTP 429/5xx, network) or refused the request."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after_s = retry_after_s
        self.permanent = permanent


class StoreError(SleepwatchError):
    """The SQLite store failed (disk full, locked, corrupt); the message says which."""


class StaleRun(StoreError):
    """A check's write was dropped: another process ended or relaunched the run after the
    check read it (its write would have undone that)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} changed in the store during the check (ended or relaunched)")
        self.name = name


class StoreFull(StoreError):
    """The disk under the store is full: nothing can be written until space is freed."""


class UnknownRun(SleepwatchError):
    """No run matches the given name or prefix."""

    permanent = True

    def __init__(self, name: str, candidates: Sequence[str]) -> None:
        known = ", ".join(candidates) if candidates else "none"
        super().__init__(f"no run named {name!r}; known runs: {known}")
        self.name = name
        self.candidates = tuple(candidates)


class AmbiguousRun(SleepwatchError):
    """A prefix matches several runs."""

    permanent = True

    def __init__(self, name: str, candidates: Sequence[str]) -> None:
        super().__init__(f"{name!r} matches several runs: {', '.join(candidates)}")
        self.name = name
        self.candidates = tuple(candidates)
