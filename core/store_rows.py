"""Row codecs of the store: how a RunRecord, an alert and an outbox message become SQLite
values and back, the fixed-width UTC timestamps and the text cleaning every column goes through.

Pure (no connection, no I/O); called only by core.store.Store, the adapter that runs the
statements. The SQL of the runs table lives here because it is built from RunRecord's fields.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from core.models import OpenAlert, OutboundMessage, RunRecord

TEXT_MAX = 500  # audit text and delivery errors are cut to this many characters
RUN_COLUMNS = tuple(f.name for f in fields(RunRecord))
RUN_TIMES = frozenset(
    {"launched_at", "deadline_at", "muted_until", "last_check_at", "next_check_at"}
    | {"torn_down_at", "ended_at", "kept_acked_at"}
)
# Only column names taken from RunRecord are formatted in; every value is a parameter.
# ON CONFLICT ... DO UPDATE rather than INSERT OR REPLACE: a replace deletes the row first,
# and the foreign keys would cascade that delete to the run's checks and alerts.
UPSERT_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in RUN_COLUMNS)}) ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "name")
)
# Columns a human changes (/extend, /mute, /keep) while checks run, and the settings only
# launch writes: the watcher's own writes of a run row (save_run, commit_check) leave them as
# stored, so a check that read the row before the command cannot undo it.
HUMAN_COLUMNS = ("deadline_at", "muted_until", "settings", "cost_extended_usd", "kept_acked_at")
# A watcher's write made from a row it read before another process changed it is dropped when
# it would undo that change: a run relaunched since (another launched_at), or a run that ended
# (a `sleepwatch teardown` from another shell) written back as not ended.
SAVE_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in RUN_COLUMNS)}) ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "name" and c not in HUMAN_COLUMNS
    )
    + " WHERE runs.launched_at = excluded.launched_at"
    " AND (runs.ended_at IS NULL OR excluded.ended_at IS NOT NULL)"
)
INSERT_MESSAGE = (
    "INSERT INTO outbox (dedupe_key, kind, run, message, created_at, next_try_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING"
)


def prune_statements(
    audit_before: str, outbox_before: str, audit_max_rows: int, refused_max_rows: int
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The DELETEs of Store.prune (retention), with their parameters, in the order run."""
    return (
        ("DELETE FROM audit WHERE at < ?", (audit_before,)),
        (
            "DELETE FROM audit WHERE verdict = 'refused' AND id <= (SELECT id FROM audit "
            "WHERE verdict = 'refused' ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (refused_max_rows,),
        ),
        (
            "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC "
            "LIMIT 1 OFFSET ?)",
            (audit_max_rows,),
        ),
        (
            "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ? AND (run IS NULL "
            "OR run NOT IN (SELECT name FROM runs WHERE live = 1))",
            (outbox_before,),
        ),
    )


def message_values(message: OutboundMessage, at: datetime) -> tuple[Any, ...]:
    stamp = ts(at)
    return (message.kind.value, message.run, to_json(message.to_json()), stamp, stamp)


def alert_values(alert: OpenAlert) -> tuple[Any, ...]:
    sent = None if alert.last_sent_at is None else ts(alert.last_sent_at)
    return (alert.run, alert.condition, ts(alert.opened_at), sent, clean_text(alert.message))


def run_values(run: RunRecord) -> tuple[Any, ...]:
    values: list[Any] = []
    for column in RUN_COLUMNS:
        value = getattr(run, column)
        if column in RUN_TIMES:
            value = None if value is None else ts(value)
        elif column == "memory":
            value = to_json(value)
        elif column == "live":
            value = int(value)
        elif isinstance(value, str):
            value = clean_text(value)
        values.append(value)
    return tuple(values)


def run_from_row(row: sqlite3.Row) -> RunRecord:
    values: dict[str, Any] = {}
    for column in RUN_COLUMNS:
        value = row[column]
        if column in RUN_TIMES:
            value = dt_or_none(value)
        elif column == "memory":
            value = json.loads(value)
        elif column == "live":
            value = bool(value)
        values[column] = value
    return RunRecord(**values)


def ts(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in SQL comparisons."""
    if moment.utcoffset() is None:
        raise ValueError(f"the store keeps tz-aware UTC datetimes only, got naive {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def dt_or_none(text: str | None) -> datetime | None:
    return None if text is None else dt(text)


def to_json(document: Any) -> str:
    # ensure_ascii escapes lone surrogates too, which SQLite could not store as UTF-8.
    return json.dumps(document, ensure_ascii=True, separators=(",", ":"))


def clean_text(value: str, limit: int | None = None) -> str:
    """Free text as SQLite can store it: lone surrogates (from bytes that were not UTF-8)
    replaced, cut to `limit` characters if given."""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")
