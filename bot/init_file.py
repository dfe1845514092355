"""What `sleepwatch init` writes: a commented `sleepwatch.toml` (no secrets: the config refuses
them) and, beside it, `sleepwatch.env` with the secrets as the environment variables the
watcher reads (core.config.Secrets: SLEEPWATCH_TELEGRAM_TOKEN, VAST_API_KEY). Both 0600, both
written whole or not at all. Pure text, then one writer.

Called by bot/init.py once the token, the chat id and the Vast key have been checked.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.config import ENV_FILE_NAME, parse_config
from core.errors import ConfigError

ENV_NAME = ENV_FILE_NAME
# What a token or key may hold before it goes into a file a shell may source (`set -a; . FILE`):
# Telegram tokens are `digits:[A-Za-z0-9_-]`, Vast keys hex; nothing a shell would expand.
SAFE_SECRET = re.compile(r"[A-Za-z0-9:_-]{1,256}")


@dataclass(frozen=True, slots=True)
class Setup:
    """What the questions and checks found."""

    chat_id: int
    user_id: int | None  # who sent the message: offered as `user_ids`, commented out
    bot_username: str
    telegram_api_base: str | None = None
    vast_api_base: str | None = None


def config_text(setup: Setup) -> str:
    user_line = (
        f"# user_ids = [{setup.user_id}]           # only these people, even in a group chat"
        if setup.user_id is not None
        else "# user_ids = [123456789]           # only these people, even in a group chat"
    )
    telegram_api = (
        f"api_base = {json.dumps(setup.telegram_api_base)}\n" if setup.telegram_api_base else ""
    )
    vast = (
        f"\n[vast]\napi_base = {json.dumps(setup.vast_api_base)}\n" if setup.vast_api_base else ""
    )
    return f"""\
# sleepwatch.toml, written by `sleepwatch init`. Every key, with its default:
# sleepwatch.example.toml. Secrets are never read from this file: the bot token and the Vast
# key are in {ENV_NAME} beside it (load it into the environment, see `sleepwatch init`'s output).

[telegram]
# The chats the bot answers and alerts: yours, found from your message to @{setup.bot_username}.
chat_ids = [{setup.chat_id}]
{user_line}
# timezone = "Europe/Berlin"      # the times you read (default: this machine's zone)
# notify_done = "loud"            # a healthy run's one message wakes you (default "silent")
{telegram_api}{vast}
# One [[runs]] entry per training run; `sleepwatch launch NAME` starts it. Uncomment and edit:
#
# [[runs]]
# name = "llama-ft"
# instance_id = "12345678"          # the Vast instance: host and port are read from the API
# key = "~/.ssh/vast_ed25519"       # the SSH key whose public half is in your Vast account
# run_dir = "/workspace/runs/llama-ft"
# command = "python train.py --eval-batch-size {{eval_batch_size}}"
# max_hours = 12
# max_cost = 25.0                   # USD: warned an hour of spend ahead, then torn down
# supervisor = {{ cwd = "/workspace/llama-ft" }}
#
# [runs.collect]                    # copied off and verified (SHA-256) BEFORE any teardown
# paths = ["output/checkpoint-*", "*.json", "attempts"]   # globs in run_dir; attempts: the logs
# # dest = "~/models/llama-ft"      # default: <state_dir>/outputs/llama-ft
# # to = "command"                  # or your own upload, run on the instance after the trainer:
# # command = ["huggingface-cli", "upload", "me/llama-ft", "output"]
# # Without [runs.collect] only the run's logs come home: checkpoints go with the instance.
#
# [runs.knobs.eval_batch_size]      # what the OOM fix may halve, down to min
# value = 64
# min = 4
"""


def env_text(token: str, vast_key: str | None) -> str:
    for secret in (token, vast_key):
        if secret is not None and not SAFE_SECRET.fullmatch(secret):
            raise ConfigError("a token or key holds characters no token or key has")
    lines = [
        "# Secrets for sleepwatch, written by `sleepwatch init`. Keep this file 0600.",
        "# sleepwatch reads it from beside its config file (a variable set in the environment",
        "# wins), or load it: EnvironmentFile= (systemd), --env-file (docker).",
        f"SLEEPWATCH_TELEGRAM_TOKEN={token}",
    ]
    if vast_key is not None:
        lines.append(f"VAST_API_KEY={vast_key}")
    return "\n".join(lines) + "\n"


def env_path(config: Path) -> Path:
    return config.with_name(ENV_NAME)


def write_private(path: Path, text: str, *, force: bool) -> None:
    """`text` to `path`, mode 0600 from its first byte, via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if not force and path.exists():
            raise ConfigError(f"{path} exists: not overwritten (--force to replace it)")
        temp.replace(path)
    finally:
        temp.unlink(missing_ok=True)


def write_setup(config: Path, setup: Setup, token: str, vast_key: str | None, force: bool) -> Path:
    """Writes the config and the env file; returns the env file's path. The config's text is
    validated as `serve` will read it (core.config) before anything is written."""
    text = config_text(setup)
    parse_config(tomllib.loads(text), source=str(config))
    secrets = env_text(token, vast_key)
    write_private(config, text, force=force)
    write_private(env_path(config), secrets, force=force)
    return env_path(config)
