"""The RUN.json sections about what happens after the trainer ends: the user's own collect
command (supervisor.collectcmd runs it) and the dead-man switch (supervisor.deadman). Their
dataclasses and parsers; errors name the dotted key.

Used by supervisor.config.parse_config, which re-exports Deadman and CollectCommand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from .configread import ConfigError
from .configread import number as _number
from .configread import section as _section
from .configread import string as _string
from .configread import string_list as _string_list


@dataclass(frozen=True)
class Deadman:
    enabled: bool = False
    ack_timeout_s: float = 900.0
    watcher_silence_s: float = 21600.0
    api_base: str = "https://console.vast.ai"
    retries: int = 6
    retry_backoff_s: float = 5.0


@dataclass(frozen=True)
class CollectCommand:
    """The user's own upload command, run after the trainer ends (an argument list)."""

    command: List[str]
    timeout_s: float = 3600.0


def parse_deadman(raw: Any) -> Deadman:
    known = (
        "enabled",
        "ack_timeout_s",
        "watcher_silence_s",
        "api_base",
        "retries",
        "retry_backoff_s",
    )
    raw = _section(raw, "deadman", known)
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError("deadman.enabled", "must be true or false")
    api_base = _string(raw, "api_base", where="deadman.") or Deadman.api_base
    if not api_base.startswith(("https://", "http://")):
        raise ConfigError("deadman.api_base", "must be an http(s) URL")
    where = "deadman."
    return Deadman(
        enabled=enabled,
        ack_timeout_s=_number(raw, "ack_timeout_s", 900.0, minimum=0, where=where),
        watcher_silence_s=_number(raw, "watcher_silence_s", 21600.0, minimum=0, where=where),
        api_base=api_base.rstrip("/"),
        retries=int(_number(raw, "retries", 6, minimum=1, integer=True, where=where)),
        retry_backoff_s=_number(raw, "retry_backoff_s", 5.0, minimum=0, where=where),
    )


def parse_collect(raw: Any) -> Optional[CollectCommand]:
    if raw is None:
        return None
    raw = _section(raw, "collect", ("command", "timeout_s"))
    command = _string_list(raw.get("command", []), "collect.command")
    if not command or not command[0]:
        raise ConfigError("collect.command", "must be a non-empty argument list")
    timeout_s = _number(raw, "timeout_s", 3600.0, minimum=1, where="collect.")
    return CollectCommand(command, timeout_s)
