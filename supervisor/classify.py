"""Failure kind of an ended attempt, from its exit code and the tail of its log (pure).

The kinds are an open vocabulary for readers (ARCHITECTURE.md); KINDS is every kind this
supervisor can write, and a contract test holds core's FailureKind to the same list.

Called by supervisor.verdict for each failed attempt; the kind it names picks the fix
(supervisor.fixes).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

from . import patterns
from .pipnames import dist_for_module

KINDS = (
    "oom",
    "host_oom",
    "missing_module",
    "missing_build_tool",
    "disk_full",
    "gpu_fault",
    "transient",
    "signal",
    "error",
    "killed",
)
ERROR_LINE = patterns.EXCEPTION_LINE
TIMEOUT_EXIT = 124  # coreutils `timeout` ran out and sent SIGTERM
MAX_EXCERPT_CHARS = 1500
NOTE = "sleepwatch: "  # a line of the supervisor's own in an excerpt


@dataclass(frozen=True)
class Failure:
    kind: str
    exit_code: Optional[int]
    excerpt: str
    module: Optional[str] = None
    dist: Optional[str] = None
    needs_ninja: bool = False
    tool: Optional[str] = None

    @property
    def signature(self) -> str:
        """Two attempts with the same signature failed the same way. The supervisor's own
        notes (free disk, the kernel's pid-bearing OOM line) are not part of it."""
        lines = [line for line in self.excerpt.splitlines() if not line.startswith(NOTE)]
        errors = [line for line in lines if ERROR_LINE.match(line)]
        last = (errors or lines or [""])[-1].strip()
        return "%s|%s|%s" % (self.kind, self.module or "", last)

    def with_note(self, note: str) -> "Failure":
        """The same failure with a line of the supervisor's own appended to the excerpt."""
        excerpt = (self.excerpt + "\n" if self.excerpt else "") + NOTE + note
        return replace(self, excerpt=excerpt[-MAX_EXCERPT_CHARS:])

    def to_json(self, attempt: int) -> dict:
        return {
            "attempt": attempt,
            "kind": self.kind,
            "exit_code": self.exit_code,
            "excerpt": self.excerpt,
        }


def signal_of(exit_code: Optional[int]) -> Optional[int]:
    """The signal that ended the trainer: Popen's negative code, or a shell's 128+N."""
    if exit_code is None:
        return None
    if exit_code < 0:
        return -exit_code
    if 128 < exit_code <= 128 + 64:
        return exit_code - 128
    return None


def classify(
    exit_code: Optional[int],
    tail: List[str],
    disk_free_mb: Optional[float] = None,
    min_free_disk_mb: float = 0.0,
    killed: bool = False,
) -> Failure:
    """`exit_code` is Popen's: negative for a signal, 128+N when a shell reported one.
    `tail` holds the last lines, oldest first. The kind comes from what ended the program
    (the last traceback chain, or the last lines), never from text printed long before."""
    excerpt = error_excerpt(tail)
    if killed:
        return Failure("killed", exit_code, excerpt)
    kind, module, tool, ninja = _kind_from_log(tail)
    if kind is None and disk_free_mb is not None and disk_free_mb < min_free_disk_mb:
        kind = "disk_full"
    if kind is None:
        kind = _kind_from_exit(exit_code)
    dist = dist_for_module(module) if module else None  # the built-in map only, here
    failure = Failure(kind, exit_code, excerpt, module, dist, needs_ninja=ninja, tool=tool)
    return _explained(failure)


def _kind_from_log(tail: List[str]) -> Tuple[Optional[str], Optional[str], Optional[str], bool]:
    module = patterns.missing_module(patterns.final_exception(tail))
    if module:
        return "missing_module", module, None, False
    tool, ninja = patterns.build_tool("\n".join(tail[-200:]))
    if tool:
        return "missing_build_tool", None, tool, ninja
    text = patterns.evidence(tail)
    for kind, pattern in (
        ("oom", patterns.CUDA_OOM),
        ("gpu_fault", patterns.GPU_FAULT),
        ("host_oom", patterns.HOST_OOM),
        ("disk_full", patterns.DISK_FULL),
        ("transient", patterns.TRANSIENT),
    ):
        if pattern.search(text):
            return kind, None, None, False
    return None, None, None, False


def _kind_from_exit(exit_code: Optional[int]) -> str:
    signum = signal_of(exit_code)
    if signum == signal.SIGKILL:
        return "host_oom"  # the kernel's OOM killer is what SIGKILLs a trainer, nearly always
    if signum is not None or exit_code == TIMEOUT_EXIT:
        return "signal"
    return "error"


def _explained(failure: Failure) -> Failure:
    """A line saying what the exit code means when the log cannot."""
    signum = signal_of(failure.exit_code)
    if failure.kind in ("signal", "host_oom") and signum is not None:
        name = _signal_name(signum)
        via = " (exit %d from the shell)" % failure.exit_code if failure.exit_code else ""
        return failure.with_note("the trainer was ended by %s%s" % (name, via))
    if failure.kind == "signal" and failure.exit_code == TIMEOUT_EXIT:
        return failure.with_note(
            "exit 124: the command's own `timeout` ran out and stopped the trainer"
        )
    if failure.kind == "missing_build_tool" and failure.tool:
        return failure.with_note("missing build tool: %s" % failure.tool)
    return failure


def _signal_name(signum: int) -> str:
    try:
        return "%s (signal %d)" % (signal.Signals(signum).name, signum)
    except ValueError:
        return "signal %d" % signum


def error_excerpt(tail: List[str], max_lines: int = 12, max_chars: int = MAX_EXCERPT_CHARS) -> str:
    """The lines around the last traceback or error line, else the last lines, bounded."""
    start = None
    for i in range(len(tail) - 1, -1, -1):
        if tail[i].startswith(patterns.TRACEBACK):
            start = i
            break
    if start is None:
        for i in range(len(tail) - 1, -1, -1):
            if ERROR_LINE.match(tail[i]):
                start = max(0, i - max_lines + 1)
                break
    lines = tail[start:] if start is not None else tail[-max_lines:]
    if len(lines) > max_lines:
        lines = lines[:2] + lines[-(max_lines - 2) :]
    return "\n".join(lines)[-max_chars:]


def module_is_users_own(module: str, search_dirs: List[str]) -> bool:
    """A missing module whose top-level package lives in the user's own tree: pip cannot help."""
    top = module.split(".")[0]
    for base in search_dirs:
        if os.path.isfile(os.path.join(base, top + ".py")) or os.path.isdir(
            os.path.join(base, top)
        ):
            return True
    return False
