"""The composition root: the one place that builds the engine, for every entry point.

`sleepwatch serve` and the one-shot commands (core/cli.py, with the chat front end bot/app.py
plugs in) call `open_app`; `sleepwatch demo` (core/demo.py) calls `build_app` with its own
local parts. `open_app` opens what the engine runs on (store, SSH pool, providers, transports:
core.runtime.open_engine), picks the notifier (the chat front end's, else the console), and
`build_app` builds the Service around them. Both hand back an App: the parts a caller uses,
each by name, so no caller reaches through one part to another (`service.watcher.*`).
Everything opened is closed by the caller's AsyncExitStack, in reverse order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypedDict, Unpack

from core.collect import Collector
from core.config import Config, Secrets, load_config
from core.console import ConsoleNotifier
from core.control import WatcherControl
from core.gc_pace import GcPacer
from core.models import RunRecord
from core.outbox import OutboxSender
from core.ping import Pinger
from core.ports import Clock, Notifier
from core.providers.registry import Providers
from core.runtime import heartbeat_path, open_engine, serve_lock, utc_now
from core.scheduling import CheckScheduler
from core.sdnotify import SdNotifier
from core.service import Service
from core.store import Store
from core.waiter import Sleep
from core.watcher import TransportFor


class ChatFrontend(Protocol):
    """A chat front end (Telegram) plugged in by the outer composition root (bot/app.py)."""

    async def open(
        self, config: Config, secrets: Secrets, stack: AsyncExitStack, store: Store
    ) -> Notifier | None:
        """The notifier to use, or None when this front end is not configured. `store` keeps
        what the front end must remember across restarts (button nonces)."""
        ...

    async def run(self, app: App) -> None:
        """Serve the chat (commands through app.control) until cancelled."""
        ...


@dataclass(frozen=True, slots=True)
class App:
    """What the root hands the CLI, the chat front end and the demo."""

    config: Config
    store: Store
    service: Service  # the engine's lifecycle: start, stop, halted, finished, drain_outbox
    control: WatcherControl  # what a human can ask: chat commands and the one-shot commands
    scheduler: CheckScheduler  # the front end adds its cron jobs (the morning summary)
    sender: OutboxSender  # a one-shot command sends what it queued before it exits
    check: Callable[[str], Awaitable[float | None]]  # one check of a run now
    ctl: Callable[[RunRecord, str], Awaitable[tuple[bool, str]]]  # a supervisor ctl command
    collector: Collector  # `sleepwatch collect`: pull a run's outputs now
    transport_for: TransportFor
    providers: Providers  # by name (launch); a run's own is providers.for_run(record)
    wake_outbox: Callable[[], None]
    problems: dict[str, str]  # what makes `sleepwatch health` fail, by source (the front end's)
    chat: ChatFrontend | None = None  # the configured chat front end, if any


class ServiceOptions(TypedDict, total=False):
    """Service's keyword options (see core.service.Service)."""

    emit: Callable[[str], None]
    min_gap_s: float
    hold_s: float
    heartbeat_file: Path | None
    heartbeat_s: float
    alarm: Callable[[str], None]
    reload_config: Callable[[], Config] | None
    config_source: str
    sleep: Sleep
    jitter: Callable[[], float]
    pinger: Pinger | None
    sd: SdNotifier | None
    gc_pacer: GcPacer | None


def build_app(
    config: Config,
    store: Store,
    notifier: Notifier,
    providers: Providers,
    transport_for: TransportFor,
    clock: Clock,
    *,
    chat: ChatFrontend | None = None,
    **options: Unpack[ServiceOptions],
) -> App:
    """The engine (core.service.Service and what it builds: watcher, scheduler, control,
    outbox sender) around the given parts; `options` are Service's keyword options."""
    service = Service(config, store, notifier, providers.for_run, transport_for, clock, **options)
    watcher = service.watcher
    return App(
        config=config,
        store=store,
        service=service,
        control=service.control,
        scheduler=service.scheduler,
        sender=service.sender,
        check=watcher.check,
        ctl=watcher.exits.ctl,
        collector=watcher.exits.collector,
        transport_for=transport_for,
        providers=providers,
        wake_outbox=watcher.wake_outbox,
        problems=service.problems,
        chat=chat,
    )


async def open_app(
    config: Config,
    secrets: Secrets,
    stack: AsyncExitStack,
    *,
    frontend: ChatFrontend | None,
    serving: bool,
    config_path: Path,
) -> App:
    """Open everything `sleepwatch serve` (`serving`) or a one-shot command runs on."""
    if serving:
        stack.enter_context(serve_lock(config.watcher.resolved_state_dir()))
    engine = await open_engine(config, secrets, stack)
    notifier = await frontend.open(config, secrets, stack, engine.store) if frontend else None
    if serving and notifier is None:
        print("sleepwatch: no SLEEPWATCH_TELEGRAM_TOKEN: alerts go to this console", flush=True)
    return build_app(
        config,
        engine.store,
        notifier or ConsoleNotifier(status_lines=not serving),
        engine.providers,
        engine.transport_for,
        utc_now,
        chat=frontend if notifier else None,
        emit=emit_line,
        hold_s=3.0 if serving else 0.0,  # a one-shot command prints at once
        heartbeat_file=heartbeat_path(config),
        heartbeat_s=config.watcher.heartbeat,
        reload_config=lambda: load_config(config_path),
        config_source=str(config_path),
        pinger=_pinger(secrets, stack) if serving else None,
        sd=SdNotifier.from_environ(os.environ) if serving else None,
        gc_pacer=GcPacer() if serving else None,
    )


def emit_line(line: str) -> None:
    """One status line to stdout; a closed stdout (a pipe gone) must not stop the watching."""
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(line, flush=True)


def _pinger(secrets: Secrets, stack: AsyncExitStack) -> Pinger | None:
    if secrets.ping_url is None:
        return None
    pinger = Pinger(secrets.ping_url.get_secret_value())
    stack.push_async_callback(pinger.close)
    return pinger
