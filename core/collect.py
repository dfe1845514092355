"""Collect a run's outputs before its instance may go (issue 13). Called by the exit path
(core/exits.py, after the terminal message is written and before any teardown) and by
`sleepwatch collect RUN` (core/cli.py).

`local`: the supervisor lists the files with their SHA-256 (`supervisor manifest`, read and
checked by core/outputs.py), then each is pulled over the run's own connection (SFTP) into
`<state_dir>/outputs/<run>/` (or `collect.dest`) as `NAME.sleepwatch-part`, continued from its
size after a dropped connection or a restart, hashed here and renamed into place only when size
and SHA-256 match. `command`: the supervisor ran the user's upload command after the trainer
ended (supervisor/collectcmd.py); this reads how it went from state.json. No `collect`: the
run's logs (attempts/, metric_history.json) are pulled as `local`, and the line says so.

A collection that cannot finish now is PENDING (teardown waits; the caller checks again); one
that failed or ran past `collect_timeout` is FAILED with what was and was not collected. The
result and the progress are kept in the store's meta (`collect:RUN`), so a restarted watcher
neither pulls a verified file again nor repeats the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from core.collect_list import list_outputs
from core.collect_report import (
    Progress,
    logs_only,
    meta_key,
    pending,
    pull_result,
    result_doc,
    result_from,
)
from core.config import CollectConfig, Config, RunConfig
from core.errors import ProtocolError, SleepwatchError, TransportError
from core.models import RunRecord
from core.outputs import (
    Collected,
    CollectResult,
    ManifestAnswer,
    ManifestFile,
    local_path,
)
from core.ports import Clock, Transport
from core.pull import (
    LocalWriteFailed,
    Mismatch,
    Partial,
    PullJob,
    SliceOver,
    pull_file,
    short_of_space_at,
    size_of,
)
from core.store import Store
from core.supervisor_client import client_for
from core.text import clean_line

log = logging.getLogger(__name__)
MAX_MISMATCHES = 3  # a file that changed while pulled is pulled again, this many times
# The exit path pulls in slices of this long and is called again at once: between slices the
# run's lock is free, so a /teardown or /kill never waits behind an hour-long pull.
SLICE_S = 30.0
NEXT_SLICE_S = 1.0
# No `collect`: the run's logs still come off (small, bounded in time); never unnamed checkpoints
LOGS_ONLY = CollectConfig(paths=["attempts", "metric_history.json"])
LOGS_S = 300.0


class Collector:
    def __init__(
        self,
        store: Store,
        config: Config,
        transport_for: Callable[[RunRecord], Transport],
        clock: Clock,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        slice_s: float | None = SLICE_S,
    ) -> None:
        self.slice_s = slice_s  # None: pull to the end in one call (`sleepwatch collect`)
        self.store = store
        self.config = config
        self.transport_for = transport_for
        self.clock = clock
        self.on_progress = on_progress
        self.live: dict[str, Progress] = {}  # pulls in progress in this process (/status)
        self._memos: dict[str, dict[str, Any]] = {}  # the memo of each pull in progress
        # per run: a next slice goes on hashing where the last stopped (no re-read of the part)
        self._partial: dict[str, Partial] = {}

    def dest(self, run: RunConfig) -> Path:
        spec = run.collect
        if spec is not None and spec.dest is not None:
            return spec.dest.expanduser()
        return self.config.watcher.resolved_state_dir() / "outputs" / run.name

    async def memo(self, run: str) -> dict[str, Any]:
        text = await self.store.get_meta(meta_key(run))
        try:
            doc = json.loads(text) if text else {}
        except ValueError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    async def _save(self, run: str, memo: dict[str, Any]) -> None:
        try:
            await self.store.set_meta(meta_key(run), json.dumps(memo))
        except SleepwatchError as exc:  # only costs a re-pull after a restart
            log.warning("%s: could not save the collection's progress: %s", run, exc)

    async def collect(self, record: RunRecord, *, again: bool = False) -> CollectResult:
        """Collect now, or return the settled result of an earlier collection (`again`: try
        again even so: `sleepwatch collect`)."""
        run = self.config.find_run(record.name)
        if run is None:
            return CollectResult(Collected.NONE, "not collected (the run is not configured)")
        spec = run.collect or LOGS_ONLY
        timeout_s = run.collect_timeout if run.collect else min(run.collect_timeout, LOGS_S)
        memo = await self.memo(record.name)
        settled = memo.get("result")
        if isinstance(settled, dict) and not again:
            return result_from(settled)
        now = self.clock()
        started = _when(memo.get("started_at")) or now
        if again or "started_at" not in memo:
            memo["started_at"] = now.isoformat()
            started = now
            await self._save(record.name, memo)
        left_s = timeout_s - (now - started).total_seconds()
        if spec.to == "command":
            result = await self._by_command(record, spec, left_s)
        else:
            result = await self._pull(record, run, spec, memo, max(left_s, 1.0))
        if result.state is Collected.PENDING and left_s <= 0:
            why = f"not verified within collect_timeout ({timeout_s:g}s)"
            result = CollectResult(Collected.FAILED, f"NOT collected: {why}", None, (why,))
        if run.collect is None:
            result = logs_only(result, NEXT_SLICE_S)
        if result.settled and record.ended_at is not None:  # on demand mid-run: not the end
            memo["result"] = result_doc(result)
        elif result.settled:
            memo["progress"] = result.line
        await self._save(record.name, memo)
        return result

    # -- command ------------------------------------------------------------------------------

    async def _by_command(
        self, record: RunRecord, spec: CollectConfig, left_s: float
    ) -> CollectResult:
        name = clean_line(spec.command[0])[:60]
        client = client_for(self.config, record.name, self.transport_for(record))
        try:
            state = await client.state(record.run_dir, timeout_s=self.config.ssh.exec_timeout)
        except (TransportError, ProtocolError) as exc:
            return pending(f"upload by `{name}`: state unreadable ({exc})", left_s)
        run = state.collect if state is not None else None
        if run is None:
            why = "the supervisor ran no collect command (launched before `collect` was set?)"
            return CollectResult(Collected.FAILED, f"NOT uploaded: {why}", None, (why,))
        if run.status == "ok":
            return CollectResult(Collected.VERIFIED, f"uploaded by `{name}` (exit 0)")
        if run.status != "failed":
            return pending(f"upload by `{name}` {clean_line(run.status)[:40]}", left_s)
        how = "timed out" if run.timed_out else f"exit {run.exit_code}"
        lines = tuple(clean_line(x)[:300] for x in run.excerpt.splitlines()[-10:])
        why = f"the upload command `{name}` failed ({how})"
        return CollectResult(
            Collected.FAILED, f"NOT uploaded: `{name}` failed ({how})", None, (why, *lines)
        )

    # -- local --------------------------------------------------------------------------------

    async def _pull(
        self,
        record: RunRecord,
        run: RunConfig,
        spec: CollectConfig,
        memo: dict[str, Any],
        left_s: float,
    ) -> CollectResult:
        dest = self.dest(run)
        transport = self.transport_for(record)
        listed = await list_outputs(self.config, record, transport, spec, left_s)
        if isinstance(listed, CollectResult):
            return listed
        answer, files, problems = listed
        total = sum(f.size for f in files)
        self._memos[record.name] = memo
        verified: dict[str, str] = memo.setdefault("verified", {})
        short = await asyncio.to_thread(short_of_space_at, dest, files, verified)
        if short is not None:
            return CollectResult(Collected.FAILED, "NOT collected: no room here", None, (short,))
        mismatches: dict[str, int] = memo.setdefault("mismatches", {})
        progress = Progress(record.name, 0, len(files), 0, total)
        slice_end = None if self.slice_s is None else _loop_time() + self.slice_s
        for entry in files:
            target = local_path(dest, entry.path)
            try:
                progress = await self._pull_one(
                    transport, record, spec, entry, target, verified, progress, left_s, slice_end
                )
            except SliceOver:
                return await self._paused(record.name, memo, progress)
            except TransportError as exc:
                return await self._interrupted(record.name, memo, progress, exc, left_s)
            except Mismatch as exc:
                mismatches[entry.path] = mismatches.get(entry.path, 0) + 1
                await self._save(record.name, memo)
                if mismatches[entry.path] < MAX_MISMATCHES:
                    self.live.pop(record.name, None)
                    again = f"{clean_line(entry.path)[:200]} {exc}; pulling it again"
                    return pending(again, left_s)
                problems.append(f"{clean_line(entry.path)[:200]}: {exc}")
            except (OSError, LocalWriteFailed) as exc:
                said = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
                problems.append(f"{clean_line(entry.path)[:200]}: cannot write here ({said})")
            else:
                await self._save(record.name, memo)  # verified: never pulled again
            progress = replace(progress, files_done=progress.files_done + 1)
        await self._save(record.name, memo)
        self.live.pop(record.name, None)
        return pull_result(files, verified, problems, _missing(spec, answer), dest)

    async def _paused(self, name: str, memo: dict[str, Any], progress: Progress) -> CollectResult:
        """This slice of the pull is over: say how far it got; the next check goes on."""
        latest = self.live.get(name, progress)
        memo["progress"] = latest.line()
        await self._save(name, memo)
        return CollectResult(Collected.PENDING, latest.line(), NEXT_SLICE_S)

    async def _interrupted(
        self, name: str, memo: dict[str, Any], progress: Progress, exc: Exception, left_s: float
    ) -> CollectResult:
        latest = self.live.pop(name, progress)
        memo["progress"] = f"{latest.line()}; interrupted, resuming"
        await self._save(name, memo)
        return pending(f"{latest.line()}; interrupted ({exc})", left_s)

    async def _pull_one(
        self,
        transport: Transport,
        record: RunRecord,
        spec: CollectConfig,
        entry: ManifestFile,
        target: Path,
        verified: dict[str, str],
        progress: Progress,
        left_s: float,
        slice_end: float | None = None,
    ) -> Progress:
        if verified.get(entry.path) == entry.sha256 and size_of(target) == entry.size:
            return self._report(replace(progress, bytes_done=progress.bytes_done + entry.size))
        verified.pop(entry.path, None)
        run_dir = record.run_dir
        remote = entry.path if entry.path.startswith("/") else posixpath.join(run_dir, entry.path)
        job = PullJob(remote, entry, target, left_s, slice_end, spec.max_mb_s)
        partial = self._partial.setdefault(record.name, {})
        progress = await pull_file(
            transport, job, progress, partial, self._report, self._save_progress
        )
        verified[entry.path] = entry.sha256
        return progress

    def _report(self, progress: Progress) -> Progress:
        self.live[progress.run] = progress
        if self.on_progress is not None:
            self.on_progress(progress)
        return progress

    async def _save_progress(self, progress: Progress) -> None:
        memo = self._memos.get(progress.run)
        if memo is not None:  # the pull's own memo: what it verified so far is kept with it
            memo["progress"] = progress.line()
            await self._save(progress.run, memo)


def _missing(spec: CollectConfig, answer: ManifestAnswer) -> list[str]:
    """Named paths that matched nothing (logs are pulled "if present": none said)."""
    return [] if spec is LOGS_ONLY else list(answer.missing)


def _when(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
