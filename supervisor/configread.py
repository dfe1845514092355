"""The field readers of RUN.json: each reads one key of a JSON object, checks its type and
bounds, and raises ConfigError naming the dotted key. Pure, standard library only.

Used only by supervisor.config (parse_config and its section parsers), at the supervisor's
start (`python3 -m supervisor start|run --config RUN.json`).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional


class ConfigError(Exception):
    """RUN.json is unusable; `field` is the dotted name of the offending key."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__("RUN.json field %r: %s" % (field_name, problem))
        self.field = field_name


def refuse_unknown(doc: Dict[str, Any], known: Any, prefix: str) -> None:
    unknown = sorted(set(doc) - set(known))
    if unknown:
        names = ", ".join(prefix + str(k) for k in unknown)
        raise ConfigError(prefix + str(unknown[0]), "unknown key(s): %s" % names)


def section(raw: Any, name: str, known: Any) -> Dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(name, "must be an object")
    refuse_unknown(raw, known, name + ".")
    return raw


def string(doc: Dict[str, Any], key: str, required: bool = False, where: str = "") -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise ConfigError(where + key, "is required")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(where + key, "must be a non-empty string")
    return value


def number(
    doc: Dict[str, Any],
    key: str,
    default: float,
    minimum: Optional[float] = None,
    integer: bool = False,
    where: str = "",
) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(where + key, "must be a number")
    if integer and int(value) != value:
        raise ConfigError(where + key, "must be an integer")
    if minimum is not None and value < minimum:
        raise ConfigError(where + key, "must be at least %s" % minimum)
    return value


def string_list(value: Any, name: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(name, "must be a list of strings")
    return list(value)


def regex(doc: Dict[str, Any], key: str, where: str) -> Optional[str]:
    pattern = string(doc, key, where=where) or None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(where + key, "is not a valid regex (%s)" % exc) from None
    return pattern
