"""What real tools print when they fail, as regexes, and where in a log tail to look (pure).

Every pattern here was checked against logs recorded from the real tool
(tests/supervisor/corpus/), except the CUDA ones, which need a GPU to record
(tests/supervisor/corpus/record_gpu.py) and follow the messages torch and NCCL print.

Used by supervisor.classify.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

TRACEBACK = "Traceback (most recent call last)"
CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Warning|Failure)"
    r"(?::.*)?$"
)
BUILD_TOOLS = (
    r"(?:gcc|cc|g\+\+|c\+\+|clang\+?\+?|nvcc|ninja|cmake|make|x86_64-linux-gnu-g(?:cc|\+\+))"
)
# `\b` cannot follow `c++` (no word boundary after `+`): tool names end at a quote or a colon.
BUILD_TOOL = re.compile(
    r"No such file or directory: '(?:[^']*/)?(?P<a>%s)(?:-\d+)?'" % BUILD_TOOLS
    + r"|(?:^|[\s/:])(?P<b>%s)(?:-\d+)?: (?:command )?not found" % BUILD_TOOLS
    + r"|command '(?:[^']*/)?(?P<c>%s)(?:-\d+)?' failed: No such file" % BUILD_TOOLS
    + r"|unable to execute '(?:[^']*/)?(?P<d>%s)(?:-\d+)?': No such file" % BUILD_TOOLS
    + r"|(?P<pyh>Python\.h): No such file or directory"
    + r"|(?P<ninja>Ninja) is required to load C\+\+ extensions"
    + r"|(?P<cxx>InvalidCxxCompiler|No working C\+\+ compiler found)"
    + r"|No CMAKE_CX?X?_COMPILER could be found|CMAKE_CX?X?_COMPILER not set",
    re.MULTILINE,
)
CUDA_OOM = re.compile(
    r"CUDA out of memory|torch\.(?:cuda\.)?OutOfMemoryError|CUDA error: out of memory"
    r"|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation"
    r"|CUDA_ERROR_OUT_OF_MEMORY|HIP out of memory|RESOURCE_EXHAUSTED: Out of memory"
    r"|NCCL WARN Cuda failure 'out of memory'"
)
GPU_FAULT = re.compile(
    r"device-side assert(?:ion)? triggered|illegal memory access was encountered"
    r"|CUDA error: (?:an )?illegal instruction|CUDA error: misaligned address"
    r"|unspecified launch failure|uncorrectable ECC error|ECC error encountered"
    r"|\bXid\b|GPU has fallen off the bus|GPU is lost"
    r"|Watchdog caught collective operation timeout|ProcessGroupNCCL's watchdog"
    r"|NCCL (?:communicator|operation).{0,80}(?:timed? ?out|Timeout)"
    r"|(?:NCCL|collective) .{0,40}timed out"
    r"|NCCL error.{0,200}(?:unhandled (?:cuda|system) error|remote process)"
    r"|ncclSystemError|ncclUnhandledCudaError|ncclRemoteError",
    re.IGNORECASE,
)
HOST_OOM = re.compile(
    r"DefaultCPUAllocator: can't allocate memory|_ArrayMemoryError|^MemoryError\b"
    r"|Unable to allocate [\d.]+ [KMGTPE]?i?B for an array|\[Errno 12\] Cannot allocate memory"
    r"|std::bad_alloc|is killed by signal: Killed|Out of memory: Killed process"
    r"|oom-kill(?:er)?\b",
    re.MULTILINE,
)
DISK_FULL = re.compile(
    r"\[Errno 28\]|No space left on device|\bENOSPC\b|os error 28|Disk quota exceeded"
    r"|\[Errno 122\]|unexpected pos \d+ vs \d+|basic_ios::clear|PytorchStreamWriter failed"
    r"|\d+ requested and \d+ written"
)
TRANSIENT = re.compile(
    r"\b5(?:0[0-4]|2\d) Server Error\b|Server error '5\d\d|HTTP Error 5\d\d\b"
    r"|too many 5\d\d error responses|HTTP error 5\d\d while getting|\b429 Client Error"
    r"|Connection reset by peer|ConnectionResetError|Connection aborted|RemoteDisconnected"
    r"|IncompleteRead|ChunkedEncodingError|Connection broken:|ReadTimeout|ConnectTimeout"
    r"|Read timed out|Temporary failure in name resolution|Name or service not known"
    r"|NameResolutionError|Failed to resolve '|nodename nor servname|getaddrinfo failed"
    r"|Could not resolve host|We couldn't connect to '[^']*' to load"
    r"|An error happened while trying to locate the file on the Hub"
    r"|Service Unavailable|Bad Gateway|Gateway Time-?out"
)
MISSING_MODULE = re.compile(
    r"No module named '(?P<q>[^']+)'|No module named (?P<bare>[A-Za-z_][\w.]*)\s*$"
    r"|requires the (?P<lib>\w+) library but it was not found"
)
WINDOW = 40  # lines looked at when the tail holds no Python traceback


def traceback_chain(tail: List[str]) -> Optional[int]:
    """Index where the last traceback chain begins (its first `Traceback` line), or None.
    A chain is tracebacks joined by "During handling..." / "The above exception was..."."""
    starts = [i for i, line in enumerate(tail) if line.startswith(TRACEBACK)]
    if not starts:
        return None
    k = len(starts) - 1
    while k > 0:
        between = [line.strip() for line in tail[starts[k - 1] : starts[k]]]
        if not any(line in CHAINED for line in between):
            break
        k -= 1
    return starts[k]


def evidence(tail: List[str]) -> str:
    """The text that says why the program ended: the last traceback chain and what follows
    it, else the last lines. Text printed earlier (a dataset row, a model's output) is not."""
    start = traceback_chain(tail)
    lines = tail[start:] if start is not None else tail[-WINDOW:]
    return "\n".join(lines)


def final_exception(tail: List[str]) -> str:
    """The last traceback's final exception, with the lines of its message; without a
    traceback, the last non-empty line (what `python -m`, a shell or a C tool ends with)."""
    start = traceback_chain(tail)
    if start is None:
        lines = [line for line in tail if line.strip()]
        return lines[-1] if lines else ""
    last = None
    for i in range(start, len(tail)):
        if EXCEPTION_LINE.match(tail[i]):
            last = i
    return "\n".join(tail[last:]) if last is not None else ""


def missing_module(final: str) -> Optional[str]:
    found = _last(MISSING_MODULE, final)
    if found is None:
        return None
    name = found.group("q") or found.group("bare") or found.group("lib")
    return name.strip() or None


def build_tool(text: str) -> Tuple[Optional[str], bool]:
    """(the missing tool's name, whether it is ninja), or (None, False)."""
    found = _last(BUILD_TOOL, text)
    if found is None:
        return None, False
    groups = found.groupdict()
    name = next((groups[g] for g in ("a", "b", "c", "d") if groups[g]), None)
    if groups["pyh"]:
        name = "Python.h"
    elif groups["ninja"]:
        name = "ninja"
    elif groups["cxx"]:
        name = "c++"
    return name or "C/C++ compiler", (name or "") == "ninja"


def _last(pattern: "re.Pattern[str]", text: str) -> "Optional[re.Match[str]]":
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the last match is the one wanted
        continue
    return last
