"""The `sleepwatch` command line as a user reads it: the verbs, their help, `--version`, and which
config file is used. Pure apart from looking at the file system for the config file.

Called by core/cli.py (main); the verbs' work is done there and in the modules it calls.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import core
from core.demo import SCENARIOS

CONFIG_NAME = "sleepwatch.toml"
CONFIG_ENV = "SLEEPWATCH_CONFIG"
DURATION_HELP = "e.g. 90m, 2h, 1h30m, 1d (a bare number is minutes)"

DESCRIPTION = (
    "Watch long GPU training runs on rented instances while you sleep: sleepwatch starts a "
    "small supervisor beside your trainer, retries what it can fix, tears the instance down "
    "when the run ends, and sends one message to your phone (an alert only when you are "
    "needed). New here? Run `sleepwatch init`, then `sleepwatch demo`."
)


def version() -> str:
    """The installed distribution's version; the package's own when run from a source tree."""
    try:
        return metadata.version("sleepwatch")
    except metadata.PackageNotFoundError:
        return core.__version__


@dataclass(frozen=True, slots=True)
class ConfigChoice:
    path: Path
    why: str  # how it was chosen, for --help and for errors


def config_candidates(environ: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """Where the config file is looked for when neither --config nor SLEEPWATCH_CONFIG says."""
    xdg = environ.get("XDG_CONFIG_HOME", "")
    # the XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"
    return [cwd / CONFIG_NAME, base / "sleepwatch" / CONFIG_NAME]


def choose_config(
    given: Path | None, environ: Mapping[str, str], cwd: Path, home: Path
) -> ConfigChoice:
    """--config, else $SLEEPWATCH_CONFIG, else ./sleepwatch.toml if it exists, else the XDG
    path ($XDG_CONFIG_HOME/sleepwatch/sleepwatch.toml, ~/.config/... without it), which is also
    where `sleepwatch init` writes when nothing else is said."""
    if given is not None:
        return ConfigChoice(given, "--config")
    if environ.get(CONFIG_ENV):
        return ConfigChoice(Path(environ[CONFIG_ENV]).expanduser(), f"${CONFIG_ENV}")
    here, xdg = config_candidates(environ, cwd, home)
    if here.exists():
        return ConfigChoice(Path(CONFIG_NAME), "found in the current folder")
    return ConfigChoice(xdg, "the default")


def config_epilog(choice: ConfigChoice) -> str:
    return (
        f"Config file: {choice.path} ({choice.why}). It is --config PATH (before or after the "
        f"command), else ${CONFIG_ENV}, else ./{CONFIG_NAME} if it exists, else "
        f"$XDG_CONFIG_HOME/sleepwatch/{CONFIG_NAME} (~/.config/sleepwatch/{CONFIG_NAME}). "
        "Secrets never go in it: SLEEPWATCH_TELEGRAM_TOKEN and VAST_API_KEY come from the "
        "environment."
    )


def _common() -> argparse.ArgumentParser:
    """--config and --verbose, accepted after the verb too (`sleepwatch runs --config x.toml`).
    SUPPRESS: a verb's parser sets them only when given, so one given before the verb stays."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, metavar="PATH", help="the config file"
    )
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
    )
    return common


def build_parser(choice: ConfigChoice | None = None) -> argparse.ArgumentParser:
    """The parser; `choice` (the config file that would be used) is shown in --help."""
    parser = argparse.ArgumentParser(
        prog="sleepwatch",
        description=DESCRIPTION,
        epilog=config_epilog(choice) if choice is not None else None,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--config", type=Path, default=None, metavar="PATH", help="the config file")
    parser.add_argument("--verbose", action="store_true", default=False, help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[common])

    _init_verb(verb("init", "set up: write a commented config file, check the Telegram token "
                    "and the Vast key, find your chat id"))  # fmt: skip
    verb("serve", "watch every live run, alert, take chat commands; leave it running")
    for name, text in (
        ("check", "check the run now and print its status line"),
        ("status", "the run's status line, cost, cadence, next check and last log lines"),
        ("gate", "check the run's instance against what the run needs (VRAM, RAM, disk)"),
        ("kill", "stop the run (the supervisor does not retry)"),
        ("teardown", "destroy the run's instance now"),
        ("keep", "keep an instance left after its run ended: no more reminders"),
        ("collect", "pull the run's outputs now (resumable), verified"),
    ):
        verb(name, text).add_argument("run", metavar="RUN", help="a run's name or a unique prefix")
    launch = verb("launch", "check the instance, upload the supervisor and start the run")
    launch.add_argument("run", metavar="RUN")
    launch.add_argument("--force", action="store_true", help="launch even if the check fails")
    launch.add_argument(
        "--replace", action="store_true", help="relaunch a run that is still being watched"
    )
    verb("runs", "one status line per run, kept instances first, with the cost so far")
    for name, text in (
        ("extend", "push the run's deadline and raise its max_cost by DURATION"),
        ("mute", "silence the run's soft alerts for DURATION (at most 24h)"),
    ):
        cmd = verb(name, text)
        cmd.add_argument("run", metavar="RUN", help="a run's name or a unique prefix")
        cmd.add_argument("duration", metavar="DURATION", help=DURATION_HELP)
    verb("health", "exit 0 while a `serve` is alive and well (for a container HEALTHCHECK)")
    demo = verb("demo", "see it work on this machine: no accounts, no GPU")
    demo.add_argument("--scenario", default="oom", choices=SCENARIOS)
    return parser


def _init_verb(init: argparse.ArgumentParser) -> None:
    init.add_argument(
        "--path", type=Path, metavar="PATH", help="where to write the config (default: see below)"
    )
    init.add_argument(
        "--token",
        help="the bot token from @BotFather (better: set SLEEPWATCH_TELEGRAM_TOKEN; a flag "
        "shows in `ps` and your shell history); asked for when missing",
    )
    init.add_argument(
        "--chat-id", type=int, help="your chat id (default: found from a message you send)"
    )
    init.add_argument(
        "--vast-key", help="your Vast.ai API key (or set VAST_API_KEY); asked for when missing"
    )
    init.add_argument(
        "--non-interactive", action="store_true", help="ask nothing: flags and environment only"
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument(
        "--wait", type=float, default=300.0, metavar="SECONDS",
        help="how long to wait for your message to the bot (default 300)",
    )  # fmt: skip
    init.add_argument("--telegram-api-base", metavar="URL", help="another Bot API server")
    init.add_argument("--vast-api-base", metavar="URL", help="another Vast API address")


def parse_args(
    argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """The parsed command line; `args.config` is always set (the file chosen, see choose_config)
    and `args.config_why` says how it was chosen."""
    env = os.environ if environ is None else environ
    cwd, home = Path.cwd(), Path.home()
    parser = build_parser(choose_config(None, env, cwd, home))
    args = parser.parse_args(argv)
    choice = choose_config(args.config, env, cwd, home)
    args.config, args.config_why = choice.path, choice.why
    return args
