"""How every answer of the remote supervisor is read (issue 11: the instance is untrusted): the
JSON object on the line after the last ANSWER_MARK (so a login banner or shell noise printed
first is never read as the answer), refused when nested deeper than MAX_DEPTH, decoded, and
validated into its typed model; anything odd is a ProtocolError, nothing else.

Used by core.supervisor_client for each command's answer (it re-exports ANSWER_MARK and
read_answer), and by core.session_link for each line of a supervisor session (session_line);
the byte caps are the transports' and core/capped.py's LineReader.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import ProtocolError
from core.text import clean_line

# The same text as supervisor.ANSWER_MARK (a contract test keeps them equal).
ANSWER_MARK = b"@@sleepwatch-answer-v1@@"
MAX_DEPTH = 32  # the supervisor's deepest answer is 4 levels; a 985-deep one is refused here
# a JSON string, escapes included: brackets inside it are text, not nesting
# An unterminated one runs to the end of the line: a pattern that had to find the closing quote
# backtracked to the end from every quote of `"\"\"\"...` (quadratic: a 4 MiB line froze the loop)
_STRINGS = re.compile(rb'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_OPENING = b"[{"
M = TypeVar("M", bound=BaseModel)


def read_answer(stdout: bytes, what: str = "supervisor") -> dict[str, Any]:
    """The JSON object after the last ANSWER_MARK line (or, from a supervisor too old to
    print one, the last non-empty line). Anything odd raises ProtocolError, nothing else."""
    try:
        return _decode(_answer_line(stdout), what)
    except ProtocolError:
        raise
    except Exception as exc:  # RecursionError, MemoryError on a huge number, ...
        raise ProtocolError(f"{what} answer unreadable ({type(exc).__name__})") from None


def session_line(line: bytes) -> dict[str, Any]:
    """One line of a supervisor session as an object: refused (ProtocolError) when deeper than
    MAX_DEPTH, not JSON, not an object, or holding NaN or Infinity (json would take them)."""
    try:
        if _deeper_than(line, MAX_DEPTH):
            raise ProtocolError(f"a session line nests deeper than {MAX_DEPTH} levels")
        doc = json.loads(line, parse_constant=_no_constant)
    except ProtocolError:
        raise
    except Exception as exc:  # ValueError, UnicodeDecodeError, RecursionError, MemoryError
        preview = clean_line(line[:80].decode("utf-8", "replace"))
        raise ProtocolError(
            f"session line unreadable ({type(exc).__name__}): {preview!r}"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"a session line is a {type(doc).__name__}, not an object")
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _answer_line(stdout: bytes) -> bytes:
    mark = stdout.rfind(ANSWER_MARK)
    while mark > 0 and stdout[mark - 1 : mark] != b"\n":  # the mark must start its line
        mark = stdout.rfind(ANSWER_MARK, 0, mark)
    if mark >= 0:
        rest = stdout[mark + len(ANSWER_MARK) :]
        if not rest.startswith(b"\n"):
            raise ProtocolError("the answer mark is not on a line of its own")
        return rest[1:].split(b"\n", 1)[0]
    lines = [line for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else b""


def _decode(line: bytes, what: str) -> dict[str, Any]:
    if _deeper_than(line, MAX_DEPTH):
        raise ProtocolError(f"{what} answer nests deeper than {MAX_DEPTH} levels: refused")
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        preview = clean_line(line[:80].decode("utf-8", "replace"))
        raise ProtocolError(
            f"{what} answered non-JSON ({exc.__class__.__name__}): {preview!r}"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what} answered a {type(doc).__name__}, not an object")
    return doc


def _deeper_than(data: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (json's recursion would
    otherwise be the bound). Strings go first, in C; a line with no more than `limit` opening
    brackets at all cannot be too deep (every probe answer): only others are walked."""
    structure = _STRINGS.sub(b"", data)
    if structure.count(b"[") + structure.count(b"{") <= limit:
        return False
    depth = 0
    for char in structure.translate(None, _NOT_BRACKETS):
        depth += 1 if char in _OPENING else -1
        if depth > limit:
            return True
    return False


def validated(model: type[M], doc: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise ProtocolError(f"{what} answer is invalid: {where}: {err['msg']}") from None
    except Exception as exc:
        raise ProtocolError(f"{what} answer unreadable ({type(exc).__name__})") from None
