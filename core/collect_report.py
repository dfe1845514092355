"""The words and records of a collection, pure: its progress line, the outputs line of the
terminal message (with what a failed collection adds to it, and the logs-only line of a run
with no `collect`), and the memo a collection keeps in the store's meta (`collect:RUN`).
core/collect.py (the I/O) and core/exits.py (the end) use them; core/control.py reads the memo
for /runs and /status, core/upkeep.py for the kept-instance reminder. No I/O, no clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.models import OutboundMessage
from core.outputs import (
    Collected,
    CollectResult,
    ManifestFile,
    collect_memo_key,
    files_phrase,
    human_bytes,
    short_dest,
)
from core.text import clean_line

RETRY_S = 15.0
SET_COLLECT = "set [runs.collect] paths to keep checkpoints"


@dataclass(frozen=True, slots=True)
class Progress:
    run: str
    files_done: int
    files: int
    bytes_done: int
    bytes_total: int
    current: str = ""
    resumed_from: int = 0  # bytes of `current` already here from an earlier pull

    def line(self) -> str:
        pct = 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 100.0
        done, total = human_bytes(self.bytes_done), human_bytes(self.bytes_total)
        return f"collecting {self.files_done}/{self.files} files, {done}/{total} ({pct:.0f}%)"


def meta_key(run: str) -> str:
    return collect_memo_key(run)


def outputs_line(stored: str | None) -> str | None:
    """What /runs and /status say of a collection, from its stored memo."""
    try:
        memo = json.loads(stored) if stored else None
    except ValueError:
        return None
    if not isinstance(memo, dict):
        return None
    result = memo.get("result")
    if isinstance(result, dict):
        return str(result.get("line", ""))[:300] or None
    progress = memo.get("progress")
    return str(progress)[:300] if isinstance(progress, str) else None


def pull_result(
    files: list[ManifestFile],
    verified: dict[str, str],
    problems: list[str],
    missing: list[str],
    dest: Path,
) -> CollectResult:
    got = [f for f in files if verified.get(f.path) == f.sha256]
    size = sum(f.size for f in got)
    where = short_dest(dest)
    nothing = (
        f"; nothing matched {', '.join(clean_line(m)[:80] for m in missing[:5])}" if missing else ""
    )
    if not problems:
        line = f"{files_phrase(len(got), size)} in {where}, verified{nothing}"
        return CollectResult(Collected.VERIFIED, line)
    phrase = files_phrase(len(got), size)
    line = f"NOT all collected: {phrase} verified in {where}, {len(problems)} not{nothing}"
    reasons = (f"collected and verified: {files_phrase(len(got), size)} in {dest}", *problems[:20])
    return CollectResult(Collected.FAILED, line, None, reasons)


def pending(line: str, left_s: float) -> CollectResult:
    return CollectResult(Collected.PENDING, line, max(1.0, min(RETRY_S, left_s)))


def result_doc(result: CollectResult) -> dict[str, Any]:
    return {
        "state": result.state.value,
        "line": result.line,
        "reasons": list(result.reasons),
        "logs_only": result.logs_only,
    }


def result_from(doc: dict[str, Any]) -> CollectResult:
    try:
        state = Collected(str(doc.get("state")))
    except ValueError:
        state = Collected.FAILED
    reasons = tuple(str(r) for r in doc.get("reasons", []) if isinstance(r, str))
    logs_only = doc.get("logs_only") is True
    return CollectResult(state, str(doc.get("line", "")), None, reasons, logs_only)


def kept_uncollected(stored: str | None) -> bool:
    """Whether a run's instance was kept because its outputs were not all collected (its
    settled collection, from the memo, FAILED with outputs configured): core/upkeep.py tells
    the kept-instance reminder the true reason with it."""
    try:
        memo = json.loads(stored) if stored else None
    except ValueError:
        return False
    result = memo.get("result") if isinstance(memo, dict) else None
    if not isinstance(result, dict):
        return False
    settled = result_from(result)
    return settled.state is Collected.FAILED and not settled.logs_only


def logs_only(result: CollectResult, paused_s: float) -> CollectResult:
    """The result of pulling only the run's logs (no `collect` configured), saying so. Only a
    pull paused between slices (`retry_s == paused_s`) goes on; an instance that cannot be
    reached now is not waited for (and billed) for its logs: not collected, say so, go on."""
    if result.state is Collected.PENDING and result.retry_s == paused_s:
        return result
    if result.state is Collected.PENDING:
        result = CollectResult(Collected.FAILED, f"NOT collected: {result.line}", None)
    line = f"logs only ({result.line}) — {SET_COLLECT}"
    return replace(result, line=line, logs_only=True)


def with_outputs(message: OutboundMessage, line: str) -> OutboundMessage:
    """The terminal message with its "outputs" line, just before the "instance" line."""
    pairs = [p for p in message.summary if p[0] != "outputs"]
    at = next((i for i, (k, _) in enumerate(pairs) if k == "instance"), len(pairs))
    pairs.insert(at, ("outputs", line))
    return replace(message, summary=tuple(pairs))


def with_uncollected(message: OutboundMessage, result: CollectResult, fate: str) -> OutboundMessage:
    """The terminal message of a run whose outputs failed to collect: what was and was not
    collected, then what happens to the instance, told there (one message per ending: no
    alert of its own). Loud when the instance is kept billing (core/exit_plan.py)."""
    told = ("outputs NOT all collected: " + result.line, *list(result.reasons)[:12], fate)
    return replace(message, reasons=(*message.reasons, *told))


def uncollected_fate(
    run: str, instance_id: str | None, *, destroy: bool, dph_total: float | None
) -> tuple[bool, str]:
    """(destroy it?, the sentence that says so) for a run whose outputs were not collected."""
    if instance_id is None:
        return False, "no cloud instance (local run): nothing to keep or destroy"
    if destroy:
        return True, (
            f"instance {instance_id} is destroyed anyway (destroy_when_uncollected = true): "
            "what was not collected is lost"
        )
    rate = f" at ${dph_total:.2f}/h" if dph_total is not None else ""
    return False, (
        f"instance {instance_id} is KEPT so nothing is lost (destroy_when_uncollected = false): "
        f"still billing{rate}; copy what you need, then /teardown {run}"
    )
