"""Reading state.json without the writer's machinery (kept light for `probe` and `wait`)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Tuple

SCHEMA = 1
TERMINAL = ("done", "failed", "stopped")
STATE_FILE = "state.json"
ACK_FILE = "watcher_ack.json"


def read_state(run_dir: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(state, None) or (None, a sentence saying why there is no usable state)."""
    path = os.path.join(run_dir, STATE_FILE)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None, "state.json missing: no supervisor has written state in %s" % run_dir
    except OSError as exc:
        return None, "state.json unreadable: %s" % exc.strerror
    if not raw.strip():
        return None, "state.json is empty (truncated)"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, "state.json is not valid JSON: %s" % exc
    if not isinstance(doc, dict):
        return None, "state.json holds a %s, not an object" % type(doc).__name__
    return doc, None
