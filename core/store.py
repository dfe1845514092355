"""The store of record: runs, checks, alerts, outbox, actions, command audit and meta, in
one SQLite file (aiosqlite, WAL, foreign keys, busy timeout).

Built once by the composition root (core.runtime) and handed to the watcher, the exit handler,
the outbox sender, the bot's handlers and the one-shot CLI commands; the only module that
holds SQL statements for these tables. Its connection plumbing (open, lock, transactions,
sqlite3 errors turned into StoreError) is core.store_db; its row codecs are core.store_rows;
the outbox and the one-time actions are core.store_outbox (its base class); one check's
statements are core.store_checks.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from core.errors import StaleRun
from core.migrate import store_error
from core.models import CheckCommit, OpenAlert, RunRecord
from core.outputs import collect_memo_key
from core.store_batch import GroupCommit
from core.store_buttons import ButtonTables
from core.store_checks import prepared as _prepared
from core.store_checks import write_batch as _write_batch
from core.store_outbox import OutboxTables
from core.store_rows import SAVE_RUN as _SAVE_RUN
from core.store_rows import TEXT_MAX as TEXT_MAX
from core.store_rows import UPSERT_RUN as _UPSERT_RUN
from core.store_rows import clean_text as _text
from core.store_rows import dt as _dt
from core.store_rows import dt_or_none as _dt_or_none
from core.store_rows import prune_statements
from core.store_rows import run_from_row as _run_from_row
from core.store_rows import run_values as _run_values
from core.store_rows import ts as _ts
from core.vocab import TeardownState, pending_terminal_key

# Retention (see Store.prune): unsolicited chat updates must not grow the file without bound.
AUDIT_KEEP_S = 90 * 86400.0
AUDIT_MAX_ROWS = 10_000
AUDIT_REFUSED_MAX_ROWS = 1_000
OUTBOX_SENT_KEEP_S = 30 * 86400.0
# Status lines (the checks table) are kept this long: at a 1-minute cadence 5,000 runs write
# 7 million a day. The run row keeps each run's last line; an ending reads the newest ones.
CHECKS_KEEP_S = 3 * 86400.0
CHECKS_PRUNE_CHUNK = 20_000  # rows per transaction: a prune never holds the writer for long
_OPEN_ALERTS = (
    "SELECT run, condition, opened_at, last_sent_at, message FROM alerts "
    "WHERE run = ? AND resolved_at IS NULL ORDER BY id"
)


class Store(ButtonTables, OutboxTables):
    """Runs, checks, alerts, outbox, actions, command audit and meta, in one SQLite file."""

    # -- runs -------------------------------------------------------------------------------

    async def upsert_run(self, run: RunRecord) -> None:
        values = _run_values(run)
        async with self._using(f"saving run {run.name}") as conn:
            await conn.execute(_UPSERT_RUN, values)

    async def save_run(self, run: RunRecord) -> bool:
        """Write the watcher's view of a run, keeping the human-owned columns as stored.
        False (nothing written) when the row changed under it (see _SAVE_RUN)."""
        async with self._using(f"saving run {run.name}") as conn:
            cursor = await conn.execute(_SAVE_RUN, _run_values(run))
            return cursor.rowcount == 1

    async def set_human_fields(
        self,
        name: str,
        *,
        deadline_at: datetime | None | object = ...,
        muted_until: datetime | None | object = ...,
        cost_extended_usd: float | object = ...,
        kept_acked_at: datetime | None | object = ...,
    ) -> None:
        """Change only /extend's, /mute's and /keep's columns (`...` leaves one as it is)."""
        given = (
            ("deadline_at", deadline_at),
            ("muted_until", muted_until),
            ("cost_extended_usd", cost_extended_usd),
            ("kept_acked_at", kept_acked_at),
        )
        changes = {column: value for column, value in given if value is not ...}
        if not changes:
            return
        sets = ", ".join(f"{column} = ?" for column in changes)  # names from the tuple above
        values = [
            _ts(v) if isinstance(v, datetime) else v if isinstance(v, float) else None
            for v in changes.values()
        ]
        async with self._using(f"updating run {name}") as conn:
            await conn.execute(f"UPDATE runs SET {sets} WHERE name = ?", (*values, name))  # noqa: S608

    async def set_run_settings(self, name: str, settings: str) -> None:
        """Replace the settings stored with a run (a change applied from the config file)."""
        sql = "UPDATE runs SET settings = ? WHERE name = ?"
        await self._write(f"updating the settings of {name}", sql, (_text(settings), name))

    async def reset_run(self, name: str, at: datetime) -> None:
        """Forget what a previous run under this name claimed, so a relaunch starts clean: its
        one-time actions (teardown, kills), its open alerts, its pending terminal message, and
        the dedupe keys of its messages (sent ones stay, under a retired key), and its collection's
        memo."""
        async with self._transaction(f"resetting run {name}") as conn:
            await conn.execute("DELETE FROM actions WHERE run = ?", (name,))
            await conn.execute(
                "UPDATE alerts SET resolved_at = ? WHERE run = ? AND resolved_at IS NULL",
                (_ts(at), name),
            )
            forget = (pending_terminal_key(name), collect_memo_key(name))
            await conn.execute("DELETE FROM meta WHERE key IN (?, ?)", forget)
            await conn.execute(
                "UPDATE outbox SET dedupe_key = dedupe_key || '#retired-' || id "
                "WHERE run = ? AND dedupe_key IS NOT NULL",
                (name,),
            )

    async def get_run(self, name: str) -> RunRecord | None:
        rows = await self._fetch("reading a run", "SELECT * FROM runs WHERE name = ?", (name,))
        return _run_from_row(rows[0]) if rows else None

    async def list_runs(self) -> list[RunRecord]:
        sql = "SELECT * FROM runs ORDER BY live DESC, launched_at DESC, name"
        return [_run_from_row(row) for row in await self._fetch("listing runs", sql, ())]

    async def live_runs(self) -> list[RunRecord]:
        """The runs being watched (the rescan's read: never every run ever stored)."""
        sql = "SELECT * FROM runs WHERE live = 1 ORDER BY launched_at DESC, name"
        return [_run_from_row(row) for row in await self._fetch("listing live runs", sql, ())]

    async def live_run_keys(self) -> list[tuple[str, datetime]]:
        """(name, launched_at) of every live run: what the rescan compares, without decoding
        5,000 rows every 30 s on the loop."""
        sql = "SELECT name, launched_at FROM runs WHERE live = 1 ORDER BY launched_at DESC, name"
        rows = await self._fetch("listing live runs", sql, ())
        return [(str(row[0]), _dt(row[1])) for row in rows]

    async def runs_named(self, names: list[str]) -> list[RunRecord]:
        """The stored runs among `names` (a few at a time: SQLite's parameter limit)."""
        found: list[RunRecord] = []
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT * FROM runs WHERE name IN ({marks}) ORDER BY launched_at DESC, name"  # noqa: S608
            found += [_run_from_row(r) for r in await self._fetch("reading runs", sql, (*chunk,))]
        return found

    async def kept_candidates(self) -> list[RunRecord]:
        """Ended runs whose instance was not destroyed nor its keeping acknowledged (what
        core.kept.is_kept looks at), not every run ever stored: read at every heartbeat."""
        sql = (
            "SELECT * FROM runs WHERE ended_at IS NOT NULL AND instance_id IS NOT NULL "
            "AND kept_acked_at IS NULL AND (teardown IS NULL OR teardown != ?) "
            "ORDER BY launched_at DESC, name"
        )
        rows = await self._fetch("listing kept instances", sql, (TeardownState.DESTROYED.value,))
        return [_run_from_row(row) for row in rows]

    async def run_names(self) -> list[str]:
        rows = await self._fetch("listing runs", "SELECT name FROM runs ORDER BY name", ())
        return [str(row[0]) for row in rows]

    # -- checks and alerts --------------------------------------------------------------------

    _commits: GroupCommit[CheckCommit, list[int]] | None = None

    async def commit_check(self, commit: CheckCommit) -> list[int]:
        """Apply everything one check decided in ONE transaction (see CheckCommit): all of it
        is written, or none. Returns the ids of the messages actually enqueued. Raises StaleRun
        (nothing written) when the run was ended or relaunched by another process meanwhile.
        Checks that finish together share the transaction's fsync (core/store_batch.py), each
        under a savepoint of its own."""
        if self._commits is None:
            self._commits = GroupCommit(self._write_checks)
        return await self._commits.submit(commit)

    async def _write_checks(self, commits: list[CheckCommit]) -> list[list[int] | BaseException]:
        first = commits[0].run.name
        doing = f"saving a check of {first}" if len(commits) == 1 else "saving checks"
        batch = [_prepared(commit) for commit in commits]
        outcomes = await self._in_thread(doing, lambda db: _write_batch(db, batch))
        return [self._outcome(one, commit) for one, commit in zip(outcomes, commits, strict=True)]

    def _outcome(
        self, outcome: list[int] | StaleRun | sqlite3.Error, commit: CheckCommit
    ) -> list[int] | BaseException:
        if isinstance(outcome, sqlite3.Error):  # this check alone failed, the batch went on
            self.write_error = store_error(
                outcome, self.path, f"saving a check of {commit.run.name}"
            )
            return self.write_error
        return outcome

    async def recent_checks(self, run: str, limit: int = 20) -> list[tuple[datetime, str, str]]:
        """(at, status_line, health) of the run's latest checks, newest first."""
        sql = (
            "SELECT at, status_line, health FROM checks WHERE run = ? "
            "ORDER BY at DESC, id DESC LIMIT ?"
        )
        rows = await self._fetch("reading checks", sql, (run, limit))
        return [(_dt(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def run_for_check(self, name: str) -> tuple[RunRecord | None, dict[str, OpenAlert]]:
        """The run and its open alerts, read in one snapshot (see Database._read). Only checks
        write alerts, under the run's lock, and a relaunch's reset is caught by the commit."""

        def read(db: sqlite3.Connection) -> tuple[sqlite3.Row | None, list[sqlite3.Row]]:
            rows = db.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchall()
            return (rows[0] if rows else None), db.execute(_OPEN_ALERTS, (name,)).fetchall()

        row, alerts = await self._read("reading a run", read)
        return (_run_from_row(row) if row else None), _alerts_from_rows(alerts)

    async def open_alerts(self, run: str) -> dict[str, OpenAlert]:
        return _alerts_from_rows(await self._fetch("reading alerts", _OPEN_ALERTS, (run,)))

    # -- command audit and meta ---------------------------------------------------------------

    async def audit(
        self, *, at: datetime, chat_id: int | None, user_id: int | None, command: str, verdict: str
    ) -> None:
        sql = "INSERT INTO audit (at, chat_id, user_id, command, verdict) VALUES (?, ?, ?, ?, ?)"
        values = (_ts(at), chat_id, user_id, _text(command, TEXT_MAX), _text(verdict, TEXT_MAX))
        await self._write("recording a command", sql, values)

    async def audit_rows(self, limit: int = 100) -> list[dict[str, object]]:
        """Newest first: id, at, chat_id, user_id, command, verdict."""
        sql = (
            "SELECT id, at, chat_id, user_id, command, verdict FROM audit ORDER BY id DESC LIMIT ?"
        )
        rows = await self._fetch("reading the audit", sql, (limit,))
        return [{**dict(row), "at": _dt(row["at"])} for row in rows]

    async def data_version(self) -> int:
        """A number that changes whenever ANOTHER connection (a `sleepwatch launch`, `teardown`
        or `extend` from another shell) commits to the file: SQLite's PRAGMA data_version, a
        cheap read that is how a running serve hears of them at once."""
        rows = await self._fetch("reading the data version", "PRAGMA data_version", ())
        return int(rows[0][0])

    async def prune(self, now: datetime) -> int:
        """Drop old rows: audit rows older than AUDIT_KEEP_S or beyond the newest
        AUDIT_MAX_ROWS (refused ones, from strangers, beyond the newest AUDIT_REFUSED_MAX_ROWS),
        and sent outbox rows older than OUTBOX_SENT_KEEP_S whose run is over (a live run's
        dedupe keys must stay). Unsent messages are never dropped. Returns the rows deleted."""
        audit_before = _ts(now - timedelta(seconds=AUDIT_KEEP_S))
        outbox_before = _ts(now - timedelta(seconds=OUTBOX_SENT_KEEP_S))
        statements = prune_statements(
            audit_before, outbox_before, AUDIT_MAX_ROWS, AUDIT_REFUSED_MAX_ROWS
        )
        deleted = 0
        async with self._transaction("pruning old audit and outbox rows") as conn:
            for sql, params in statements:
                deleted += (await conn.execute(sql, params)).rowcount
        return deleted + await self.prune_checks(now) + await self.prune_buttons(now)

    async def prune_checks(self, now: datetime) -> int:
        """Drop status lines older than CHECKS_KEEP_S, oldest first, in chunks. Ids follow
        insertion, so the cut is the first id of a kept line (found without a full scan)."""
        before = _ts(now - timedelta(seconds=CHECKS_KEEP_S))
        first_kept = await self._fetch(
            "finding old status lines",
            "SELECT COALESCE((SELECT id FROM checks WHERE at >= ? ORDER BY id LIMIT 1), "
            "(SELECT IFNULL(MAX(id), 0) + 1 FROM checks))",
            (before,),
        )
        cut = int(first_kept[0][0])
        deleted = 0
        while True:
            gone = await self._write(
                "pruning old status lines",
                "DELETE FROM checks WHERE id IN "
                "(SELECT id FROM checks WHERE id < ? ORDER BY id LIMIT ?)",
                (cut, CHECKS_PRUNE_CHUNK),
            )
            deleted += gone
            if gone < CHECKS_PRUNE_CHUNK:
                return deleted

    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetch("reading meta", "SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        sql = (
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        await self._write(f"saving {key}", sql, (key, _text(value)))


def _alerts_from_rows(rows: list[sqlite3.Row]) -> dict[str, OpenAlert]:
    alerts = [OpenAlert(row[0], row[1], _dt(row[2]), _dt_or_none(row[3]), row[4]) for row in rows]
    return {alert.condition: alert for alert in alerts}
