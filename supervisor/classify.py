"""Failure kind of an ended attempt, from its exit code and the tail of its log (pure)."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from typing import List, Optional

from .pipnames import dist_for_module

OOM = re.compile(
    r"CUDA out of memory|torch\.(?:cuda\.)?OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED"
    r"|HIP out of memory|RESOURCE_EXHAUSTED: Out of memory|cudaErrorMemoryAllocation"
)
MISSING_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '([^']+)'")
BUILD_TOOL = re.compile(
    r"(?:\b(?:gcc|g\+\+|cc|c\+\+|make|ninja|cmake)\b[^\n]*(?:not found|No such file|failed with"
    r" exit status 127|command not found))|Python\.h: No such file|Ninja is required"
    r"|error: command '[^']*(?:gcc|cc|g\+\+)' failed|unable to execute '[^']*(?:gcc|cc)'"
    r"|No CMAKE_C(?:XX)?_COMPILER could be found"
)
NINJA = re.compile(r"ninja", re.IGNORECASE)
DISK_FULL = re.compile(r"\[Errno 28\]|No space left on device|ENOSPC")
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception|Interrupt|Exit)\b.*|Killed\s*$)")


@dataclass(frozen=True)
class Failure:
    kind: str
    exit_code: Optional[int]
    excerpt: str
    module: Optional[str] = None
    dist: Optional[str] = None
    needs_ninja: bool = False

    @property
    def signature(self) -> str:
        """Two attempts with the same signature failed the same way."""
        lines = self.excerpt.splitlines()
        errors = [line for line in lines if ERROR_LINE.match(line)]
        last = (errors or lines or [""])[-1].strip()
        return "%s|%s|%s" % (self.kind, self.module or "", last)

    def to_json(self, attempt: int) -> dict:
        return {
            "attempt": attempt,
            "kind": self.kind,
            "exit_code": self.exit_code,
            "excerpt": self.excerpt,
        }


def classify(
    exit_code: Optional[int],
    tail: List[str],
    disk_free_mb: Optional[float] = None,
    min_free_disk_mb: float = 0.0,
    killed: bool = False,
) -> Failure:
    """`exit_code` is Popen's: negative for a signal. `tail` holds the last lines, oldest first;
    every line is read, not just the last, because tqdm redraws its bar after a traceback."""
    text = "\n".join(tail)
    excerpt = error_excerpt(tail)
    if killed:
        return Failure("killed", exit_code, excerpt)
    if OOM.search(text):
        return Failure("oom", exit_code, excerpt)
    found = _last(MISSING_MODULE, text)
    if found:
        return Failure("missing_module", exit_code, excerpt, found, dist_for_module(found))
    if BUILD_TOOL.search(text):
        return Failure("missing_build_tool", exit_code, excerpt, needs_ninja=_ninja(text))
    low_disk = disk_free_mb is not None and disk_free_mb < min_free_disk_mb
    if DISK_FULL.search(text) or low_disk:
        return Failure("disk_full", exit_code, excerpt)
    if exit_code in (-signal.SIGKILL, 137):
        return Failure("host_oom", exit_code, excerpt)
    if exit_code is not None and exit_code < 0:
        return Failure("signal", exit_code, excerpt)
    return Failure("error", exit_code, excerpt)


def _ninja(text: str) -> bool:
    return bool(NINJA.search(text))


def _last(pattern: "re.Pattern[str]", text: str) -> Optional[str]:
    matches = list(pattern.finditer(text))
    return matches[-1].group(1) if matches else None


def error_excerpt(tail: List[str], max_lines: int = 12, max_chars: int = 1500) -> str:
    """The lines around the last traceback or error line, else the last lines, bounded."""
    start = None
    for i in range(len(tail) - 1, -1, -1):
        if tail[i].startswith("Traceback (most recent call last)"):
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
