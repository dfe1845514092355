"""CLI: run / start / probe / ctl / wait / ack / manifest / session. Each prints one JSON
object on stdout (run: none; session: JSON lines until stdin closes, supervisor/session.py).
With `--framed` (the watcher always asks for it) the object comes on the line after
ANSWER_MARK, so shell noise printed before it is never read as the answer.

Run on the instance as `python3 -m supervisor ...` by the watcher: core/supervisor_client.py
builds every command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from . import ANSWER_MARK
from .fsutil import private_dir

if TYPE_CHECKING:
    from .config import Config

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_OWNER = 0, 1, 2, 3


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m supervisor")
    parser.add_argument("--framed", action="store_true", help="print ANSWER_MARK first")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, func in (("run", _cmd_run), ("start", _cmd_start)):
        cmd = sub.add_parser(name)
        cmd.add_argument("--config", required=True)
        cmd.set_defaults(func=func)
    probe = sub.add_parser("probe")
    probe.add_argument("--run-dir", required=True)
    probe.add_argument("--attempt", type=int)
    probe.add_argument("--offset", type=int, default=0)
    probe.add_argument("--max-bytes", type=int, default=65536)
    probe.add_argument("--tail-lines", type=int, default=40)
    probe.add_argument("--ack", metavar="WATCHER_ID")
    probe.add_argument("--metrics", action="store_true", help="add the metric history (charts)")
    probe.set_defaults(func=_cmd_probe)
    ctl = sub.add_parser("ctl")
    ctl.add_argument("--run-dir", required=True)
    ctl.add_argument("--timeout", type=float, default=30.0)
    ctl.add_argument("command", choices=("kill-attempt", "stop"))
    ctl.set_defaults(func=_cmd_ctl)
    wait = sub.add_parser("wait")
    wait.add_argument("--run-dir", required=True)
    wait.add_argument("--status", required=True)
    wait.add_argument("--attempt", type=int, required=True)
    wait.add_argument("--quiet", type=float)
    wait.add_argument("--timeout", type=float, required=True)
    wait.set_defaults(func=_cmd_wait)
    ack = sub.add_parser("ack", help="a watcher stored this terminal state (disarms dead-man)")
    ack.add_argument("--run-dir", required=True)
    ack.add_argument("--watcher", required=True)
    ack.add_argument("--status", required=True)
    ack.add_argument("--attempt", type=int, required=True)
    ack.add_argument("--ended-at", required=True)
    ack.set_defaults(func=_cmd_ack)
    manifest = sub.add_parser("manifest", help="sizes and SHA-256 of the run's outputs")
    manifest.add_argument("--run-dir", required=True)
    manifest.add_argument("--path", action="append", required=True, dest="paths")
    manifest.add_argument("--max-files", type=int, default=2000)
    manifest.set_defaults(func=_cmd_manifest)
    session = sub.add_parser("session", help="JSON lines both ways until stdin closes")
    session.add_argument(
        "--heartbeat", type=float, default=60.0, help="a beat after this many silent seconds"
    )
    session.set_defaults(func=_cmd_session)
    return parser


def _print(doc: Dict[str, Any], args: argparse.Namespace) -> None:
    text = json.dumps(doc)
    if args.framed:  # one write: the mark and the answer cannot be split by other output
        text = "\n%s\n%s" % (ANSWER_MARK, text)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _config(path: str) -> Optional["Config"]:
    from .config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        sys.stderr.write("supervisor: %s\n" % exc)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import Supervisor
    from .slog import foreground_logger

    cfg = _config(args.config)
    if cfg is None:
        return EXIT_CONFIG
    private_dir(cfg.run_dir)
    code = Supervisor(cfg, foreground_logger(os.path.join(cfg.run_dir, "supervisor.log"))).run()
    if code == EXIT_OWNER:
        sys.stderr.write("supervisor: a live supervisor already owns %s\n" % cfg.run_dir)
    return code


def _cmd_start(args: argparse.Namespace) -> int:
    from .control import lock_holder
    from .daemon import start_daemon

    cfg = _config(args.config)
    if cfg is None:
        return EXIT_CONFIG
    private_dir(cfg.run_dir)
    owner = lock_holder(cfg.run_dir)
    if owner is not None:
        _print(
            {
                "ok": False,
                "pid": owner,
                "message": "a live supervisor (pid %s) already owns %s" % (owner, cfg.run_dir),
            },
            args,
        )
        return EXIT_OWNER

    def body(ready: Any) -> int:
        from .runner import Supervisor
        from .slog import daemon_logger

        return Supervisor(cfg, daemon_logger(), daemon=True).run(ready)

    doc = start_daemon(cfg.run_dir, body)
    _print(doc, args)
    return EXIT_OK if doc.get("ok") else EXIT_OWNER


def _cmd_probe(args: argparse.Namespace) -> int:
    from .probe import snapshot

    doc = snapshot(
        args.run_dir,
        args.attempt,
        args.offset,
        args.max_bytes,
        args.tail_lines,
        args.ack,
        metrics=args.metrics,
    )
    _print(doc, args)
    return EXIT_OK


def _cmd_ctl(args: argparse.Namespace) -> int:
    from .control import send_command

    doc = send_command(args.run_dir, args.command, args.timeout)
    owner = doc.pop("_owner")
    _print(doc, args)
    if doc["ok"]:
        return EXIT_OK
    return EXIT_FAILED if owner else EXIT_OWNER


def _cmd_wait(args: argparse.Namespace) -> int:
    from .waiter import wait_for_change

    doc = wait_for_change(args.run_dir, args.status, args.attempt, args.quiet, args.timeout)
    _print(doc, args)
    return EXIT_OK


def _cmd_ack(args: argparse.Namespace) -> int:
    from .probe import write_stored_ack

    doc = write_stored_ack(args.run_dir, args.watcher, args.status, args.attempt, args.ended_at)
    _print(doc, args)
    return EXIT_OK if doc["ok"] else EXIT_FAILED


def _cmd_manifest(args: argparse.Namespace) -> int:
    from .manifest import build_manifest

    doc = build_manifest(args.run_dir, args.paths, max(1, min(args.max_files, 2000)))
    _print(doc, args)
    return EXIT_OK if doc["ok"] else EXIT_FAILED


def _cmd_session(args: argparse.Namespace) -> int:
    from .session import run_session

    first = "\n%s\n" % ANSWER_MARK if args.framed else None
    return run_session(sys.stdout, sys.stdin.fileno(), args.heartbeat, first)


if __name__ == "__main__":
    sys.exit(main())
