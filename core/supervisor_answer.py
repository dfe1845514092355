"""How every answer of the remote supervisor is read (issue 11: the instance is untrusted): the
JSON object on the line after the last ANSWER_MARK (so a login banner or shell noise printed
first is never read as the answer), decoded, refused when nested deeper than MAX_DEPTH, and
validated into its typed model; anything odd is a ProtocolError, nothing else.

Used by core.supervisor_client for each command's answer (it re-exports ANSWER_MARK and
read_answer), and by core.session_link for each line of a supervisor session (session_line);
the byte caps are the transports' and core/capped.py's LineReader.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import ProtocolError
from core.text import clean_line

# The same text as supervisor.ANSWER_MARK (a contract test keeps them equal).
ANSWER_MARK = b"@@sleepwatch-answer-v1@@"
MAX_DEPTH = 32  # the supervisor's deepest answer is 4 levels; a 985-deep one is refused here
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
        doc = _bounded(line, "a session line", parse_constant=_no_constant)
    except ProtocolError:
        raise
    except Exception as exc:  # ValueError, UnicodeDecodeError, MemoryError
        preview = clean_line(line[:80].decode("utf-8", "replace"))
        raise ProtocolError(
            f"session line unreadable ({type(exc).__name__}): {preview!r}"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"a session line is a {type(doc).__name__}, not an object")
    return doc


def _bounded(line: bytes, what: str, **options: Any) -> Any:
    """`line` decoded, refused when it nests deeper than MAX_DEPTH. json's C decoder bounds its
    own recursion (RecursionError, long before the stack is at risk); the depth of what it
    built is then counted without recursion. Decoding first is cheaper than scanning the text
    for brackets outside strings (a probe's 5 KiB took 53 us to scan, 27 us to decode)."""
    try:
        doc = json.loads(line, **options)
        deep = nests_deeper(doc, MAX_DEPTH)
    except RecursionError:
        doc, deep = None, True
    if deep:
        raise ProtocolError(f"{what} nests deeper than {MAX_DEPTH} levels: refused")
    return doc


def nests_deeper(doc: Any, limit: int) -> bool:
    """Whether decoded JSON nests its objects and arrays deeper than `limit` (`{"a": [1]}` is
    2 deep: its brackets' depth in the text). Level by level, exact types only (json builds
    plain dicts and lists): a probe's 110 values took 22 us as a stack of (node, depth), 8 here."""
    level = [doc] if type(doc) is dict or type(doc) is list else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level, depth = below, depth + 1
    return False


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
    try:
        doc = _bounded(line, f"{what} answer")
    except (ValueError, UnicodeDecodeError) as exc:
        preview = clean_line(line[:80].decode("utf-8", "replace"))
        raise ProtocolError(
            f"{what} answered non-JSON ({exc.__class__.__name__}): {preview!r}"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what} answered a {type(doc).__name__}, not an object")
    return doc


def validated(model: type[M], doc: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise ProtocolError(f"{what} answer is invalid: {where}: {err['msg']}") from None
    except Exception as exc:
        raise ProtocolError(f"{what} answer unreadable ({type(exc).__name__})") from None
