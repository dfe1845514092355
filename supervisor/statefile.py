"""Reading state.json without the writer's machinery (kept light for `probe` and `wait`).

Used by supervisor.probe, supervisor.waiter, supervisor.deadman and supervisor.state.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Tuple

SCHEMA = 1
TERMINAL = ("done", "failed", "stopped")
STATE_FILE = "state.json"
ACK_FILE = "watcher_ack.json"  # any probe with --ack: a watcher is alive
STORED_ACK_FILE = "watcher_stored.json"  # `ack`: a watcher stored this terminal state


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


def stored_ack_matches(ack: Any, state: Optional[Dict[str, Any]]) -> bool:
    """True when a watcher's `ack` names this terminal state: same status, attempt and end.
    Only such an ack disarms the dead-man switch (a probe that merely read it does not)."""
    if not isinstance(ack, dict) or state is None or state.get("status") not in TERMINAL:
        return False
    if ack.get("status") != state.get("status") or ack.get("attempt") != state.get("attempt"):
        return False
    mine, theirs = _instant(state.get("ended_at")), _instant(ack.get("ended_at"))
    return mine is not None and theirs is not None and abs(mine - theirs) < 0.001


def _instant(text: Any) -> Optional[float]:
    if not isinstance(text, str) or len(text) > 64:
        return None
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None
