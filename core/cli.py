"""`sleepwatch` command line: parses the command (core/cli_args.py), gets the engine's parts
from the composition root (core/root.py: open_app) and runs one command, or `serve` until a
signal. The answers it prints are core/answers.py's, the chat's words.

Called by bot/app.py (the outer root, which passes the chat front end in, and `init`'s wizard;
without a front end, or without a token, the console notifier is used) and by
`python -m core.cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

from core.answers import extension_answer, mute_answer, runs_text_lines, runs_title, status_answer
from core.cli_args import parse_args
from core.config import ENV_FILE_NAME, Config, Secrets, load_config
from core.durations import EXTEND, MUTE
from core.errors import ConfigError, SleepwatchError
from core.health import read_heartbeat
from core.launch import LaunchRefused, launch, plan_launch
from core.root import App, ChatFrontend, open_app
from core.runtime import configure_logging, heartbeat_path, utc_now
from core.sdnotify import SdNotifier
from core.tasks import log_if_failed
from core.text import clean_line

SetupWizard = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def main(
    argv: Sequence[str] | None = None,
    *,
    frontend: ChatFrontend | None = None,
    setup: SetupWizard | None = None,
) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    try:
        if args.command == "demo":
            from core.demo import run_demo

            return asyncio.run(run_demo(args.scenario))
        if args.command == "init":
            if setup is None:
                raise SleepwatchError("init needs the Telegram front end: run `sleepwatch init`")
            return asyncio.run(setup(args))
        if args.command == "health" and not args.config.exists():
            config = Config()
        elif not args.config.exists() and args.config_why != "--config":
            raise ConfigError(
                f"no config file at {args.config} ({args.config_why}): `sleepwatch init` "
                "writes one, or pass --config PATH"
            )
        else:
            config = load_config(args.config)
        if args.command == "health":
            return health(config, utc_now())
        secrets = Secrets.load(os.environ, args.config.with_name(ENV_FILE_NAME))
        return asyncio.run(dispatch(args, config, secrets, frontend))
    except SleepwatchError as exc:
        print(f"sleepwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def health(config: Config, now: datetime) -> int:
    """0 while a `serve` loop is alive and has no problem (store writable, token accepted)."""
    path = heartbeat_path(config)
    try:
        text: str | None = path.read_text()
    except OSError:
        text = None
    report = read_heartbeat(text, now, where=path)
    if not report.healthy:
        print(f"unhealthy: {report.reason}", file=sys.stderr)
        return 1
    return 0


async def dispatch(
    args: argparse.Namespace, config: Config, secrets: Secrets, frontend: ChatFrontend | None
) -> int:
    # the same rule and bounds as /extend and /mute in chat, checked before anything is opened
    rule = {"extend": EXTEND, "mute": MUTE}.get(args.command)
    duration_s = rule.parse(args.duration) if rule is not None else 0
    async with AsyncExitStack() as stack:
        serving = args.command == "serve"
        app = await open_app(
            config, secrets, stack, frontend=frontend, serving=serving, config_path=args.config
        )
        if serving:
            return await serve(app)
        if args.command in ("launch", "gate"):  # with this file's settings, never stored ones
            return await launch_or_gate(args, app)
        await app.service.learn_runs()  # a run launched with another config file is still known
        return await one_shot(args, app, duration_s)


async def one_shot(args: argparse.Namespace, app: App, duration_s: float) -> int:
    """runs, status, collect, check, kill, teardown, extend, mute, keep: one command, then
    exit. What it prints is what chat answers (core.answers), as plain text."""
    control, tz = app.control, app.config.telegram.zone  # times as chat shows them
    now = utc_now()
    if args.command == "runs":
        await print_runs(app, now)
        return 0
    name = await control.resolve(args.run)
    if args.command == "collect":
        from core.collect_cli import collect_now

        return await collect_now(app.collector, app.store, name)
    if args.command == "check":
        interval = await app.check(name)
        await app.sender.drain_once()
        print(f"next check in {interval:.0f}s" if interval else "no further checks")
        return 0
    if args.command == "kill":
        print(await control.kill(name))
    elif args.command == "teardown":
        print(await control.teardown(name))
        await app.sender.drain_once()
    elif args.command == "extend":
        print(extension_answer(name, await control.extend(name, duration_s, now), now, tz))
    elif args.command == "mute":
        print(mute_answer(name, await control.mute(name, duration_s, now), now, tz))
    elif args.command == "keep":
        print(await control.keep(name, now))
    elif args.command == "status":
        say(status_answer(await control.view(name, now), now, tz).lines())
    return 0


def say(lines: Sequence[str]) -> None:
    """Lines for a terminal: what came from the instance is cleaned (no escape sequences)."""
    print("\n".join(clean_line(line) for line in lines))


async def print_runs(app: App, now: datetime) -> None:
    views = await app.control.list_runs(now)
    say([runs_title(views), *runs_text_lines(views, now, app.config.telegram.zone)])


async def launch_or_gate(args: argparse.Namespace, app: App) -> int:
    run = app.config.run(args.run)
    provider = app.providers.named(run.provider)
    if run.instance_id is not None and provider is None:
        why = app.providers.why_not(run.provider)
        raise LaunchRefused(f"{run.name}: instance {run.instance_id}: {why}")
    plan = await plan_launch(run, app.config, provider, utc_now)
    if plan.gate is not None:
        print(plan.gate.render())
    elif args.command == "gate":
        print(f"{run.name}: no [runs.gate] section or no instance_id: nothing to check")
    if args.command == "gate":
        return 0 if plan.gate is None or plan.gate.passed else 1
    record = await launch(
        plan,
        run,
        app.config,
        app.store,
        app.transport_for(plan.record),
        provider,
        force=args.force,
        replace_live=args.replace,
    )
    print(f"{record.name}: supervisor started in {record.run_dir}; `sleepwatch serve` watches it")
    return 0


async def serve(app: App) -> int:
    service, frontend = app.service, app.chat
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):  # no SIGHUP on Windows
        loop.add_signal_handler(signal.SIGHUP, service.request_reload)
    await service.start()
    watchdog_s = SdNotifier.watchdog_s(os.environ)
    if watchdog_s is not None and watchdog_s < 2 * service.heartbeat_s:
        logging.getLogger(__name__).warning(
            "WatchdogSec (%.0f s) is under twice [watcher] heartbeat (%.0f s): systemd may "
            "restart a healthy serve",
            watchdog_s,
            service.heartbeat_s,
        )
    service.sd.ready()
    chat = log_if_failed(asyncio.create_task(frontend.run(app)), "chat") if frontend else None
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(service.halted.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if chat is not None:
            chat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await chat
        service.sd.stopping()
        await service.stop()
    if service.halted.is_set():
        print(f"sleepwatch: stopped: {service.halt_reason}", file=sys.stderr, flush=True)
        return 1
    return 0
