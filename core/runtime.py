"""The composition root's building blocks: store, SSH pool, the providers and, per run, the
transport and the provider, all opened once and closed by one AsyncExitStack; the serve lock
and logging set-up.

Called by the root (core/root.py: open_app) and nowhere else, except `utc_now` (every edge's
clock) and `heartbeat_path` (`sleepwatch health`, core/cli.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.config import Config, Secrets
from core.errors import SleepwatchError
from core.local import LocalTransport
from core.models import RunRecord
from core.ports import Provider, Transport
from core.providers.registry import (
    REGISTRY,
    ProviderEntry,
    Providers,
    check_runs,
    open_providers,
)
from core.run_settings import settings_for
from core.ssh import SshOptions, SshPool, SshTarget, SshTransport
from core.store import Store

DB_NAME = "sleepwatch.sqlite3"
LOCK_NAME = "serve.lock"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Engine:
    config: Config
    secrets: Secrets
    store: Store
    pool: SshPool
    providers: Providers
    local: LocalTransport
    ssh_options: SshOptions

    def transport_for(self, record: RunRecord) -> Transport:
        settings = settings_for(self.config, record.name)
        if settings.local or record.ssh_host is None:
            return self.local
        target = SshTarget(
            host=record.ssh_host,
            port=record.ssh_port or 22,
            user=record.ssh_user or "root",
            key_path=settings.key,
            max_sessions=settings.max_sessions,
        )
        return SshTransport(self.pool, target, self.ssh_options)

    def provider_for(self, record: RunRecord) -> Provider | None:
        """The run's provider, by the name it was launched with (RunRecord.provider)."""
        return self.providers.for_run(record)


async def open_engine(
    config: Config,
    secrets: Secrets,
    stack: AsyncExitStack,
    registry: Sequence[ProviderEntry] = REGISTRY,
) -> Engine:
    """`registry`: the providers a run may name (tests register their own beside Vast)."""
    check_runs(config.runs, registry)  # a wrong provider or id fails before anything opens
    state_dir = config.watcher.resolved_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = await Store.open(state_dir / DB_NAME)
    stack.push_async_callback(store.close)
    options = SshOptions(
        connect_timeout_s=config.ssh.connect_timeout,
        keepalive_interval_s=config.ssh.keepalive,
        max_sessions=config.ssh.max_sessions,
    )
    pool = SshPool(
        state_dir / "known_hosts",
        known_hosts=config.ssh.known_hosts.expanduser() if config.ssh.known_hosts else None,
        options=options,
    )
    stack.push_async_callback(pool.close)
    providers = open_providers(config, secrets, stack, registry)
    return Engine(config, secrets, store, pool, providers, LocalTransport(), options)


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@contextlib.contextmanager
def serve_lock(state_dir: Path) -> Iterator[None]:
    """Hold `state_dir/serve.lock` (an flock, released by the kernel when the process dies)
    while `serve` runs. A second `serve` on the same state dir would send every message twice
    and race the first one's teardowns: it is refused with the holder's pid."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SleepwatchError(f"cannot create the lock file {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise SleepwatchError(
                f"another `sleepwatch serve` (pid {holder}) is already running on {state_dir}; "
                "stop it first (two would send every message twice)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def heartbeat_path(config: Config) -> Path:
    return config.watcher.resolved_state_dir() / "service.heartbeat"
