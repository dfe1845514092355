"""`sleepwatch` command line: parses the command, gets the engine's parts from the
composition root (core/root.py: open_app) and runs one command, or `serve` until a signal.

Called by bot/app.py (the outer root, which passes the chat front end in; without one, or
without a token, the console notifier is used) and by `python -m core.cli`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path

from core.config import Config, Secrets, load_config
from core.demo import SCENARIOS
from core.durations import EXTEND
from core.errors import SleepwatchError
from core.health import read_heartbeat
from core.launch import LaunchRefused, launch, plan_launch
from core.root import App, ChatFrontend, open_app
from core.runtime import configure_logging, heartbeat_path, utc_now
from core.sdnotify import SdNotifier
from core.tasks import log_if_failed

DEFAULT_CONFIG = "sleepwatch.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sleepwatch", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG))
    parser.add_argument("--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="watch every live run, alert, take chat commands")
    for name, text in (
        ("check", "one check now; prints the status line"),
        ("gate", "run the run-first gate against the instance"),
        ("kill", "stop the run (no retry)"),
        ("teardown", "destroy the run's instance now"),
        ("keep", "keep an instance left after its run ended: no more reminders"),
    ):
        sub.add_parser(name, help=text).add_argument("run")
    collect = sub.add_parser("collect", help="pull the run's outputs now (resumable), verified")
    collect.add_argument("run")
    launch_cmd = sub.add_parser("launch", help="gate, upload and start the supervisor")
    launch_cmd.add_argument("run")
    launch_cmd.add_argument("--force", action="store_true", help="launch even if the gate fails")
    launch_cmd.add_argument(
        "--replace", action="store_true", help="relaunch a run that is still being watched"
    )
    sub.add_parser("runs", help="one status line per run")
    extend = sub.add_parser(
        "extend",
        help="push the run's deadline and raise its max_cost by DURATION at the hourly price",
    )
    extend.add_argument("run")
    extend.add_argument("duration", help="e.g. 90m, 2h, 1h30m, 1d (a bare number is minutes)")
    sub.add_parser("health", help="exit 0 while a serve loop is alive (container HEALTHCHECK)")
    demo = sub.add_parser("demo", help="the whole promise on this machine, no accounts")
    demo.add_argument(
        "--scenario",
        default="oom",
        choices=SCENARIOS,
    )
    return parser


def main(argv: Sequence[str] | None = None, *, frontend: ChatFrontend | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        if args.command == "demo":
            from core.demo import run_demo

            return asyncio.run(run_demo(args.scenario))
        config = (
            load_config(args.config)
            if args.command != "health" or args.config.exists()
            else Config()
        )
        if args.command == "health":
            return health(config, utc_now())
        return asyncio.run(dispatch(args, config, Secrets.load(os.environ), frontend))
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
    # the same bounds as /extend in chat, checked before anything is opened
    extend_s = EXTEND.parse(args.duration) if args.command == "extend" else 0
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
        return await one_shot(args, app, extend_s)


async def one_shot(args: argparse.Namespace, app: App, extend_s: float) -> int:
    """runs, collect, check, kill, teardown, extend, keep: one command, then exit."""
    control = app.control
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
        moved = await control.extend(name, extend_s, now)
        if moved.deadline_at is not None:
            print(f"{name}: deadline now {moved.deadline_at:%Y-%m-%d %H:%M} UTC")
        if moved.cost_limit_usd is not None:
            print(f"{name}: max_cost now ${moved.cost_limit_usd:.2f}")
    elif args.command == "keep":
        print(await control.keep(name, now))
    return 0


async def print_runs(app: App, now: datetime) -> None:
    for view in await app.control.list_runs(now):
        cost = f" ${view.cost_usd:.2f}" if view.cost_usd is not None else ""
        projected = (
            f" (~${view.projected_usd:.2f} projected)" if view.projected_usd is not None else ""
        )
        kept = " KEPT: still billing" if view.kept else ""
        print(f"{view.status_line}{cost}{projected}{kept}")


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
