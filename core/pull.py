"""One file of a run's outputs pulled over the run's transport (SFTP for SSH), resumable and
verified: core/collect.py calls `pull_file` for each file of a checked manifest.

The bytes go to `NAME.sleepwatch-part` beside the target, appended from the part's size (a
dropped connection or a killed watcher loses nothing pulled), hashed as they arrive, and the
part is renamed into place only when its size and SHA-256 equal the manifest's. A pull stops
at the end of its slice (SliceOver), keeping its hash so far for the next slice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.collect_report import Progress
from core.outputs import PART_SUFFIX, ManifestFile, local_path, short_of_space
from core.ports import Transport

log = logging.getLogger(__name__)
CHUNK = 4 << 20
PROGRESS_EVERY = 64 << 20  # bytes between progress rows in the store
READ_TIMEOUT_S = 120.0


class Mismatch(Exception):
    """The pulled bytes are not what the manifest said (the file changed, or a lie)."""


class SliceOver(Exception):
    """The pull's slice of time is spent: the caller is called again to go on."""


class LocalWriteFailed(Exception):
    """Not an OSError: the SSH channel would read one as the connection failing."""


@dataclass(frozen=True, slots=True)
class PullJob:
    remote: str
    entry: ManifestFile
    target: Path
    open_s: float  # how long the remote file may stay open
    slice_end: float | None  # loop time at which to stop (None: to the end)
    max_mb_s: float | None = None


Report = Callable[[Progress], Progress]
SaveProgress = Callable[[Progress], Awaitable[None]]
Partial = dict[str, tuple[int, Any]]  # path -> (bytes in the part file, their SHA-256 so far)


def part_of(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


async def pull_file(
    transport: Transport,
    job: PullJob,
    progress: Progress,
    partial: Partial,
    report: Report,
    save_progress: SaveProgress,
) -> Progress:
    entry, part = job.entry, part_of(job.target)
    job.target.parent.mkdir(parents=True, exist_ok=True)
    offset = size_of(part) or 0
    if offset > entry.size:
        part.unlink()
        offset = 0
    digest = await _digest_so_far(part, offset, partial.pop(entry.path, None), entry.path)
    progress = replace(progress, current=entry.path, resumed_from=offset)
    progress = report(replace(progress, bytes_done=progress.bytes_done + offset))
    loop = asyncio.get_running_loop()
    began, pulled, reported = loop.time(), 0, 0
    with part.open("ab") as out:
        async with transport.open_read(job.remote, timeout_s=job.open_s) as source:
            while offset < entry.size:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    chunk = await source.read(offset, min(CHUNK, entry.size - offset))
                if not chunk:
                    break
                try:
                    await asyncio.to_thread(out.write, chunk)
                except OSError as exc:
                    raise LocalWriteFailed(exc.strerror or str(exc)) from None
                digest.update(chunk)
                offset, pulled = offset + len(chunk), pulled + len(chunk)
                progress = report(replace(progress, bytes_done=progress.bytes_done + len(chunk)))
                if pulled - reported >= PROGRESS_EVERY:
                    reported = pulled
                    await save_progress(progress)
                if job.max_mb_s:  # hold the pull to the bandwidth the user allows
                    ahead_s = pulled / (job.max_mb_s * 1e6) - (loop.time() - began)
                    if ahead_s > 0:
                        await asyncio.sleep(ahead_s)
                over = job.slice_end is not None and loop.time() >= job.slice_end
                if over and offset < entry.size:
                    partial[entry.path] = (offset, digest)
                    raise SliceOver
    if offset != entry.size or digest.hexdigest() != entry.sha256:
        part.unlink()
        raise Mismatch("changed or differs from its manifest (size or SHA-256)")
    os.replace(part, job.target)
    return progress


async def _digest_so_far(part: Path, offset: int, known: tuple[int, Any] | None, path: str) -> Any:
    if known is not None and offset and known[0] == offset:
        return known[1]  # the next slice of the same pull
    if offset:
        log.info("resuming %s at %d bytes", path, offset)
        return await asyncio.to_thread(sha256_of, part)
    return hashlib.sha256()


def short_of_space_at(
    dest: Path, files: list[ManifestFile], verified: dict[str, str]
) -> str | None:
    """What is still to pull against the free space where it goes (runs in a thread)."""
    needed = 0
    for entry in files:
        target = local_path(dest, entry.path)
        if verified.get(entry.path) == entry.sha256 and size_of(target) == entry.size:
            continue
        needed += max(0, entry.size - (size_of(part_of(target)) or 0))
    try:
        dest.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest).free
    except OSError as exc:
        return f"cannot use {dest}: {exc.strerror or exc}"
    return short_of_space(needed, free, dest)


def size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def sha256_of(path: Path) -> Any:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest
