"""The outputs of a run, as pure values: the supervisor's manifest answer (typed and bounded,
read by core/supervisor_client.py), the checks that keep an untrusted manifest inside what the
user's `collect.paths` named, where each file lands locally, and the words that report a
collection ("outputs: 3 files, 14.2 GB in …/outputs/llama-ft, verified"). core/collect.py does
the I/O around them. Nothing here awaits, reads a clock or touches a file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.text import clean_line

MAX_FILES = 2000
MAX_PATH = 512
MAX_FILE_BYTES = 1 << 44  # 16 TiB: anything larger is a lie, not a checkpoint
PART_SUFFIX = ".sleepwatch-part"

Path512 = Annotated[str, Field(min_length=1, max_length=MAX_PATH)]


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class ManifestFile(_Answer):
    path: Path512
    size: int = Field(ge=0, le=MAX_FILE_BYTES)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ManifestSkip(_Answer):
    path: Annotated[str, Field(max_length=MAX_PATH)] = ""
    why: Annotated[str, Field(max_length=200)] = ""


class ManifestAnswer(_Answer):
    ok: bool
    message: Annotated[str, Field(max_length=4096)] = ""
    files: tuple[ManifestFile, ...] = Field(default=(), max_length=MAX_FILES)
    missing: tuple[Path512, ...] = Field(default=(), max_length=64)
    skipped: tuple[ManifestSkip, ...] = Field(default=(), max_length=50)
    truncated: bool = False


class Collected(StrEnum):
    """Where a collection stands. PENDING: try again later (teardown waits)."""

    NONE = "none"  # no `collect` configured
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CollectResult:
    state: Collected
    line: str  # the terminal message's "outputs" line
    retry_s: float | None = None  # PENDING: when to try again
    reasons: tuple[str, ...] = field(default=())  # FAILED: what was and was not collected
    # no `collect` configured: only the run's logs were pulled; a failure to pull them keeps
    # no instance (core/exits.py: the policy decides, the message says so)
    logs_only: bool = False

    @property
    def settled(self) -> bool:
        return self.state is not Collected.PENDING


def collect_memo_key(run: str) -> str:
    """The meta key of a run's collection memo (core/collect.py). The store's reset_run forgets
    it: a relaunch under the same name collects its own outputs, never the last run's result."""
    return f"collect:{run}"


def refused_path(path: str, patterns: Sequence[str]) -> str | None:
    """Why a manifest path cannot be trusted, or None. It must be in normal form (no `..`,
    no `.`, no `//`), relative exactly when its pattern is, and lie at or under a match of one
    of the user's patterns, compared one component at a time (a `*` never crosses a `/`)."""
    if "\x00" in path or "\\" in path:
        return "odd characters"
    if posixpath.normpath(path) != path or path in (".", "/") or ".." in path.split("/"):
        return "not a plain path"
    parts = PurePosixPath(path).parts
    for pattern in patterns:
        wanted = PurePosixPath(posixpath.normpath(pattern)).parts
        if pattern.startswith("/") != path.startswith("/") or len(parts) < len(wanted):
            continue
        if all(fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=False)):
            return None
    return "not named by collect.paths"


def local_path(dest: Path, path: str) -> Path:
    """Where a checked manifest path lands: under `dest`, absolute ones under `dest/abs`."""
    rel = path.lstrip("/")
    base = dest / "abs" if path.startswith("/") else dest
    return base.joinpath(*PurePosixPath(rel).parts)


def checked_files(
    answer: ManifestAnswer, patterns: Sequence[str]
) -> tuple[list[ManifestFile], list[str]]:
    """The manifest's files that pass `refused_path`, and a line for each one refused. Two
    paths where one is a folder of the other cannot both land: the later one is refused."""
    files: list[ManifestFile] = []
    refused: list[str] = []
    taken: set[str] = set()
    for entry in answer.files:
        why = refused_path(entry.path, patterns)
        prefixes = {
            "/".join(entry.path.split("/")[:i]) for i in range(1, entry.path.count("/") + 1)
        }
        if why is None and (entry.path in taken or prefixes & taken):
            why = "clashes with another file"
        if why is None and any(t.startswith(entry.path + "/") for t in taken):
            why = "clashes with another file"
        if why is not None:
            refused.append(f"{clean_line(entry.path)[:200]}: {why}")
            continue
        files.append(entry)
        taken.add(entry.path)
    return files, refused


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover (the loop returns)


def files_phrase(count: int, size: int) -> str:
    return f"{count} file{'s' if count != 1 else ''}, {human_bytes(size)}"


def short_dest(dest: Path) -> str:
    """The last two parts of the folder, after an ellipsis: the full path is in the log."""
    parts = dest.parts
    return str(dest) if len(parts) <= 3 else "…/" + "/".join(parts[-2:])


def short_of_space(needed: int, free: int, dest: Path) -> str | None:
    """Why a pull cannot fit where it goes (said before a byte is pulled), or None. A margin
    of 1% or 100 MB is kept free: a full disk breaks more than this pull."""
    margin = max(100_000_000, needed // 100)
    if needed + margin <= free:
        return None
    return (
        f"{human_bytes(needed)} still to pull but {human_bytes(free)} free at {dest}: "
        "free some space (or set collect.dest), then `sleepwatch collect`"
    )
