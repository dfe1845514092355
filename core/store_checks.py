"""One check's commit as statements: the run row (refused as stale when another process ended
or relaunched the run meanwhile), the status line, the alerts opened, resolved and re-sent,
and the messages queued. core.store.Store.commit_check writes the checks that finish together
in one transaction (core/store_batch.py), each under a savepoint of its own (a check alone:
the transaction is its all-or-nothing), and all of it in ONE call on the database's thread
(Database._in_thread): the values are made on the loop (`prepared`), the statements run there
(`write_batch`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from typing import Any

from core.errors import StaleRun
from core.models import CheckCommit
from core.store_rows import INSERT_MESSAGE, SAVE_RUN, alert_values, message_values, run_values
from core.store_rows import clean_text as _text
from core.store_rows import to_json as _json
from core.store_rows import ts as _ts

_INSERT_CHECK = "INSERT INTO checks (run, at, status_line, health, reasons) VALUES (?, ?, ?, ?, ?)"
_RESOLVE = (
    "UPDATE alerts SET resolved_at = ? WHERE run = ? AND condition = ? AND resolved_at IS NULL"
)
_OPEN = (
    "INSERT INTO alerts (run, condition, opened_at, last_sent_at, message) VALUES (?, ?, ?, ?, ?)"
)
_RESEND = (
    "UPDATE alerts SET last_sent_at = ? WHERE run = ? AND condition = ? AND resolved_at IS NULL"
)

# what one check's commit came to: the ids of the messages queued, or why it was not written
Outcome = list[int] | StaleRun | sqlite3.Error


@dataclass(frozen=True, slots=True)
class PreparedCheck:
    """One check's statement parameters, made on the loop (no I/O)."""

    name: str
    run: tuple[Any, ...]
    check: tuple[Any, ...]
    resolved: tuple[tuple[Any, ...], ...]
    opened: tuple[tuple[Any, ...], ...]
    resent: tuple[tuple[Any, ...], ...]
    messages: tuple[tuple[Any, ...], ...]  # (dedupe_key, *message values)
    # it tells something or changes something a human will hear of: synced (see write_batch)
    durable: bool = True


def prepared(commit: CheckCommit) -> PreparedCheck:
    name, at = commit.run.name, _ts(commit.at)
    return PreparedCheck(
        name=name,
        run=run_values(commit.run),
        check=(name, at, _text(commit.status_line), _text(commit.health), _json(commit.reasons)),
        resolved=tuple((at, name, condition) for condition in commit.alerts_resolved),
        opened=tuple(alert_values(alert) for alert in commit.alerts_opened),
        resent=tuple((at, name, condition) for condition in commit.alerts_resent),
        messages=tuple((key, *message_values(msg, commit.at)) for key, msg in commit.messages),
        durable=bool(
            commit.health != "ok"
            or commit.messages
            or commit.alerts_opened
            or commit.alerts_resent
            or commit.alerts_resolved
            or commit.run.ended_at is not None
            or not commit.run.live
        ),
    )


def apply_check(db: sqlite3.Connection, check: PreparedCheck) -> list[int]:
    """One check's statements (inside the caller's transaction); the ids of the messages
    queued (a known dedupe key queues none). Raises StaleRun when the run row is not ours."""
    if db.execute(SAVE_RUN, check.run).rowcount != 1:  # this check's view is out of date
        raise StaleRun(check.name)
    db.execute(_INSERT_CHECK, check.check)
    for params in check.resolved:
        db.execute(_RESOLVE, params)
    for params in check.opened:
        db.execute(_OPEN, params)
    for params in check.resent:
        db.execute(_RESEND, params)
    ids: list[int] = []
    for params in check.messages:
        cursor = db.execute(INSERT_MESSAGE, params)
        if cursor.rowcount == 1 and cursor.lastrowid is not None:
            ids.append(cursor.lastrowid)
    return ids


def write_batch(db: sqlite3.Connection, batch: list[PreparedCheck]) -> list[Outcome]:
    """The checks of `batch` in one transaction (one fsync), each all-or-nothing under its own
    savepoint (one check alone: the transaction): a stale or failing one is rolled back
    alone. Raises (nothing written) when SQLite dropped the whole transaction (disk full) or
    could not begin it.

    A batch of healthy checks that queue no message and change no alert (nearly all of them)
    is committed without its fsync (synchronous NORMAL, for this transaction only): after a
    power cut it may be lost, and the run is as it was after the last batch that told or
    changed something, which WAS synced (each FULL commit syncs the log up to itself), so
    nothing is told twice or never; the next check redoes the status line. Every other write
    stays FULL. The fsync was most of a check's latency on a busy disk (p99 ~100 ms against a
    few ms for the rest of the commit)."""
    quiet = not any(check.durable for check in batch)
    if quiet:
        db.execute("PRAGMA synchronous = NORMAL")
    try:
        return _transaction(db, batch)
    finally:
        if quiet:
            db.execute("PRAGMA synchronous = FULL")


def _transaction(db: sqlite3.Connection, batch: list[PreparedCheck]) -> list[Outcome]:
    db.execute("BEGIN IMMEDIATE")  # the write lock up front (see Database._transaction)
    try:
        alone = len(batch) == 1  # its own transaction is its all-or-nothing: no savepoint
        outcomes = [_one(db, check, alone) for check in batch]
        if db.in_transaction:  # (a check alone that failed has rolled it back)
            db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (disk full)
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    return outcomes


def _one(db: sqlite3.Connection, check: PreparedCheck, alone: bool) -> Outcome:
    if not alone:
        db.execute("SAVEPOINT one_check")
    outcome: Outcome
    try:
        outcome = apply_check(db, check)
    except StaleRun as exc:
        outcome = exc
    except sqlite3.Error as exc:
        if not db.in_transaction:  # SQLite dropped the whole batch (disk full)
            raise
        outcome = exc
    if alone:
        if not isinstance(outcome, list):
            db.execute("ROLLBACK")
        return outcome
    if not isinstance(outcome, list):
        db.execute("ROLLBACK TO one_check")
    db.execute("RELEASE one_check")
    return outcome
