"""`supervisor manifest`: the files a run's `collect` paths name, each with its size and SHA-256,
for the watcher to pull and verify (core/collect.py calls it through the supervisor client
after the trainer ended, before any teardown).

Patterns are relative to the run dir (or absolute) shell globs, one component at a time (`*`
never crosses a `/`); a pattern that names a folder takes every file under it. Only regular
files are listed: symlinks are skipped, and so is anything whose real path leaves the base
folder of its pattern (a symlinked parent pointing at `/etc`). The answer is bounded: at most
`max_files` entries, paths of at most MAX_PATH characters. Hashes are cached in the run dir by
(path, size, mtime), so a watcher that asks again after a dropped connection does not make the
instance read a 14 GB checkpoint twice.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import os
import stat
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .collectcmd import LOG_NAME
from .control import CONTROL_FILE, LOCK_FILE, REPLY_FILE
from .deadman import REPORT_FILE
from .fsutil import read_json, write_json_atomic
from .metrics import METRICS_FILE
from .statefile import ACK_FILE, STATE_FILE, STORED_ACK_FILE

CACHE_FILE = ".collect-hashes.json"
# The supervisor's own files in the run dir: they change while it lives (a pull would never
# verify) and are not the run's outputs. The trainer's logs (attempts/N.log) are.
OWN_FILES = frozenset(
    {
        CACHE_FILE,
        "RUN.json",
        "supervisor.log",
        LOG_NAME,
        STATE_FILE,
        ACK_FILE,
        STORED_ACK_FILE,
        LOCK_FILE,
        CONTROL_FILE,
        REPLY_FILE,
        REPORT_FILE,
        METRICS_FILE,
    }
)
# ... except these, when a pattern names one exactly: the metric history is final once the
# run ended, and the watcher pulls it with the logs when no `collect` is configured.
NAMED_OUTPUTS = frozenset({METRICS_FILE})
MAX_PATH = 512
MAX_FILES = 2000
MAX_PATTERNS = 64
MAX_VISITS = 20000  # entries looked at, skipped ones included: a folder of a million stops here
_CHUNK = 1 << 20
_MAGIC = ("*", "?", "[")


def build_manifest(run_dir: str, patterns: List[str], max_files: int = MAX_FILES) -> Dict[str, Any]:
    """{"ok", "files": [{path, size, sha256}], "missing": [pattern], "skipped": [{path, why}],
    "truncated"}. `path` is as the pattern named it: relative to run_dir, or absolute."""
    problem = _bad_patterns(patterns)
    if problem:
        return {"ok": False, "message": problem, "files": []}
    cache = _Cache(os.path.join(run_dir, CACHE_FILE))
    seen: Dict[str, Dict[str, Any]] = {}
    missing: List[str] = []
    skipped: List[Dict[str, str]] = []
    truncated = False
    visits = 0
    for pattern in patterns:
        found = 0
        for path, full, why in _walk(run_dir, pattern):
            visits += 1
            if visits > MAX_VISITS:
                truncated = True
                break
            if why is not None:
                if len(skipped) < 50:
                    skipped.append({"path": path[:MAX_PATH], "why": why})
                continue
            found += 1
            if path in seen:
                continue
            if len(seen) >= max_files:
                truncated = True
                break
            entry = cache.entry(path, full)
            if entry is None:
                skipped.append({"path": path[:MAX_PATH], "why": "unreadable"})
                continue
            seen[path] = entry
        if not found:
            missing.append(pattern)
    cache.save()
    return {
        "ok": True,
        "files": sorted(seen.values(), key=lambda e: e["path"]),
        "missing": missing,
        "skipped": skipped[:50],
        "truncated": truncated,
    }


def _bad_patterns(patterns: List[str]) -> Optional[str]:
    if not patterns or len(patterns) > MAX_PATTERNS:
        return "between 1 and %d paths are needed" % MAX_PATTERNS
    for pattern in patterns:
        parts = pattern.split("/")
        if not pattern or len(pattern) > MAX_PATH or ".." in parts or "\x00" in pattern:
            return "refusing the path %r (empty, too long, or with '..')" % pattern[:80]
    return None


Found = Iterator[Tuple[str, str, Optional[str]]]


def _walk(run_dir: str, pattern: str) -> Found:
    """(path as named, full path, reason skipped or None) of every file the pattern names,
    lazily: the caller's bound stops the walk."""
    absolute = pattern.startswith("/")
    clean = os.path.normpath(pattern)
    full_pattern = clean if absolute else os.path.join(run_dir, clean)
    # a relative pattern promises files under the run dir, an absolute one under its folders
    real_base = os.path.realpath(_base(full_pattern) if absolute else run_dir)
    own = os.path.realpath(run_dir)
    for full in sorted(itertools.islice(glob.iglob(full_pattern), MAX_VISITS)):
        name = os.path.basename(full)
        named_output = name in NAMED_OUTPUTS and clean == name
        if (
            name in OWN_FILES
            and not named_output
            and os.path.realpath(os.path.dirname(full)) == own
        ):
            continue
        named = full if absolute else os.path.relpath(full, run_dir)
        if os.path.islink(full):
            yield named, full, "symlink"
        elif os.path.isdir(full):
            yield from _files_under(full, named, real_base, own)
        else:
            yield named, full, _escape(full, real_base)


def _files_under(folder: str, named: str, real_base: str, own: str) -> Found:
    if _escape(folder, real_base):
        yield named, folder, "outside its base folder"
        return
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            if name in OWN_FILES and os.path.realpath(root) == own:
                continue
            full = os.path.join(root, name)
            yield os.path.join(named, os.path.relpath(full, folder)), full, _escape(full, real_base)


def _base(full_pattern: str) -> str:
    """The leading folders of a pattern that hold no glob characters."""
    parts = full_pattern.split("/")
    keep = []
    for part in parts[:-1]:
        if any(m in part for m in _MAGIC):
            break
        keep.append(part)
    return "/".join(keep) or "/"


def _escape(full: str, real_base: str) -> Optional[str]:
    try:
        st = os.lstat(full)
    except OSError:
        return "vanished"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        return "not a regular file"
    real = os.path.realpath(full)
    if real != real_base and not real.startswith(real_base.rstrip("/") + "/"):
        return "outside its base folder"
    return None


class _Cache:
    """SHA-256 by (path, size, mtime_ns): hashing is the slow part of a manifest."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.old: Dict[str, Any] = {}
        self.new: Dict[str, Any] = {}
        try:
            doc = read_json(path)
            if isinstance(doc, dict):
                self.old = doc
        except (OSError, ValueError):
            pass

    def entry(self, named: str, full: str) -> Optional[Dict[str, Any]]:
        try:
            st = os.stat(full)
        except OSError:
            return None
        key = [st.st_size, st.st_mtime_ns]
        cached = self.old.get(named)
        if isinstance(cached, list) and len(cached) == 3 and cached[:2] == key:
            digest = cached[2]
        else:
            digest = _sha256(full)
            if digest is None:
                return None
        self.new[named] = key + [digest]
        return {"path": named, "size": st.st_size, "sha256": digest}

    def save(self) -> None:
        try:
            write_json_atomic(self.path, self.new)
        except OSError:
            pass  # a cache that cannot be written only costs time


def _sha256(path: str) -> Optional[str]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
