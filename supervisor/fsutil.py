"""Atomic JSON files: a reader never sees a half-written file (temp file, fsync, rename).

Used by every supervisor module that writes a run file (state, control, dead-man report, log,
trainer log).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Optional

PRIVATE_FILE = 0o600  # run files hold the trainer's log and state: the owner's only
PRIVATE_DIR = 0o700


def private_dir(path: str) -> None:
    """Create `path` (and parents) 0700, and tighten it if it already exists (SFTP uploads
    create the run folder with the server's default mode)."""
    os.makedirs(path, mode=PRIVATE_DIR, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)


def open_private(path: str, flags: int) -> int:
    """os.open of a run file, created 0600 (and tightened if it was not)."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, PRIVATE_FILE)
    return fd


def write_json_atomic(path: str, doc: Any) -> None:
    data = (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    with open(path, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def disk_free_mb(path: str) -> Optional[float]:
    try:
        return shutil.disk_usage(path).free / 2**20
    except OSError:
        return None


def remove_if_present(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
