"""Atomic JSON files: a reader never sees a half-written file (temp file, fsync, rename)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Optional


def write_json_atomic(path: str, doc: Any) -> None:
    data = (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
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
