"""The interfaces core talks through. Implementations live in one adapter module each;
fakes for tests need no inheritance (these are Protocols).

Implemented by the adapters (core.ssh, core.local, core.providers, bot.telegram, core.console)
and by core.control; wired together at the composition root (core.runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol

from core.models import ExecResult, Extension, InstanceInfo, OutboundMessage, RunRecord, RunView

Clock = Callable[[], datetime]
"""Returns tz-aware UTC now. Edge code reads it once per tick; pure code takes `now`."""


class RemoteFile(Protocol):
    """A file open for reading on the run's host (core/collect.py pulls outputs with it)."""

    async def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset`; b"" at the end. Raises TransportError."""
        ...


class Interactive(Protocol):
    """A long-lived process on the run's host, spoken to through its stdin and stdout (the
    supervisor session: core/supervisor_session.py). Errors become TransportError."""

    async def send(self, data: bytes) -> None:
        """Write `data` to its stdin and wait until it is taken (flow control)."""
        ...

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes of its stdout, b"" once it closed. Callers cap what they keep."""
        ...

    def abort_link(self) -> None:
        """The link under it looks dead (the process missed its heartbeats): drop that link,
        so that everything else on it fails now and the next call reconnects. An SSH
        transport's keepalives idle while the process is open, and would otherwise take two
        more minutes to find the link dead."""
        ...


class Transport(Protocol):
    """Runs commands on one run's host (SSH, or this machine for the demo and tests).

    `run` never goes through a remote shell with text we did not quote: argv is joined with
    shlex quoting by SSH transports. Raises TransportError (HostKeyMismatch when the host key
    changed) on unreachable hosts, dropped channels and timeouts; a non-zero exit status is
    not an error, it is in the result.
    """

    label: str

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        max_output_bytes: int | None = None,
        lasting: bool = False,
    ) -> ExecResult:
        """Run argv. At most `max_output_bytes` of stdout (None: the transport's own cap) are
        read: past it the command is ended and the result has `overflow` set. `lasting`: the
        command holds its channel for minutes (a wait): an SSH transport keeps it off the
        channels it reserves for probes."""
        ...

    def open_process(
        self, argv: Sequence[str], *, open_timeout_s: float
    ) -> AbstractAsyncContextManager[Interactive]:
        """Start argv as a long-lived process for the body of the `async with` (no deadline:
        `open_timeout_s` bounds getting a channel and starting it). Leaving the body closes its
        stdin (a well-behaved process exits on that) and its channel. An SSH transport holds
        one lasting channel for it, off the probes' reserve. The caller watches the process's
        liveness itself (the session's heartbeat): an SSH transport idles its keepalives on
        that connection while the process is open."""
        ...

    async def put_tree(self, local_dir: Path, remote_dir: str) -> None:
        """Copy a local directory tree to remote_dir (created, replaced file by file)."""
        ...

    async def put_files(self, files: Sequence[tuple[Path, str]]) -> None:
        """Copy each local file to its remote path (parent folders created)."""
        ...

    async def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None: ...

    def open_read(
        self, remote_path: str, *, timeout_s: float
    ) -> AbstractAsyncContextManager[RemoteFile]:
        """Open a remote file for reading over the run's own connection (SFTP for SSH).
        `timeout_s` bounds the whole time it is open; errors become TransportError."""
        ...

    async def close(self) -> None: ...


class Notifier(Protocol):
    """Delivers one outbound message. Raises DeliveryError (with retry_after_s when the far end
    asked for a wait, permanent when retrying cannot help). Must not retry by itself: the
    outbox sender owns retries and ordering."""

    async def deliver(self, message: OutboundMessage) -> None: ...


class Provider(Protocol):
    """One cloud provider's instance API, for the runs whose `provider` is its `name` (the
    engine resolves it per run with `ProviderFor`, as it resolves the transport). Raises
    ProviderError on API failure: `permanent` when retrying cannot help (bad key, refused,
    not an id of this provider's).

    The adapter owns everything provider-specific: it maps its statuses to InstanceState and
    knows its console; its entry in core/providers/registry.py checks its instance ids and
    opens it."""

    name: str

    async def show(self, instance_id: str) -> InstanceInfo | None:
        """The instance now, or None only on the provider's clear word that it does not exist
        (an unreadable answer raises a transient ProviderError, never None)."""
        ...

    async def destroy(self, instance_id: str) -> None:
        """Ask for the instance to be destroyed; an instance already gone is not an error.
        Returning is not proof: callers verify by reading it back (core.teardown)."""
        ...

    async def label(self, instance_id: str, label: str) -> None:
        """Name the instance after its run in the provider's console (best effort)."""
        ...

    def console_url(self, instance_id: str) -> str:
        """Where a human can see and destroy the instance by hand."""
        ...


ProviderFor = Callable[[RunRecord], "Provider | None"]
"""The provider of a run's instance (by `RunRecord.provider`), or None: a run without an
instance, or a provider this engine could not open."""


class Control(Protocol):
    """What a human can ask of the watcher (chat commands, CLI). Run names given by a human go
    through `resolve` first (exact name, else unique prefix; raises UnknownRun / AmbiguousRun).
    Each action returns one human-readable sentence saying what happened."""

    async def resolve(self, name: str) -> str: ...

    async def list_runs(self, now: datetime) -> list[RunView]:
        """Live runs first, then the rest, newest first."""
        ...

    async def view(self, run: str, now: datetime) -> RunView: ...

    async def chart(self, run: str) -> bytes | None:
        """The run's chart as PNG: drawn now from a live run's metric history, else the one
        its terminal message carried; None when there is none."""
        ...

    async def kill(self, run: str) -> str:
        """`supervisor ctl stop`: the run ends as stopped/killed, no retry."""
        ...

    async def teardown(self, run: str) -> str:
        """Destroy the run's instance now (verified), whatever the policy."""
        ...

    async def extend(self, run: str, seconds: float, now: datetime) -> Extension:
        """Push the deadline (and any pending deadline teardown) by `seconds`, and raise the
        max_cost limit by `seconds` at the run's hourly price. Raises NoDeadline when the run
        has neither."""
        ...

    async def keep(self, run: str, now: datetime) -> str:
        """Acknowledge an instance left billing after its run ended: no more reminders."""
        ...

    async def mute(self, run: str, seconds: float, now: datetime) -> datetime:
        """Silence soft alerts until the returned time (at most 24 h from now)."""
        ...
