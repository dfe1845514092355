"""One check's commit as statements: the run row (refused as stale when another process ended
or relaunched the run meanwhile), the status line, the alerts opened, resolved and re-sent,
and the messages queued. Run inside the caller's transaction by core.store.Store.commit_check
(one check, or a group of them: core/store_batch.py).
"""

from __future__ import annotations

import aiosqlite

from core.errors import StaleRun
from core.models import CheckCommit
from core.store_outbox import insert_message as _insert_message
from core.store_rows import SAVE_RUN as _SAVE_RUN
from core.store_rows import alert_values as _alert_values
from core.store_rows import clean_text as _text
from core.store_rows import message_values as _message_values
from core.store_rows import run_values as _run_values
from core.store_rows import to_json as _json
from core.store_rows import ts as _ts


async def apply_check(conn: aiosqlite.Connection, commit: CheckCommit) -> list[int]:
    """One check's statements (inside the caller's transaction)."""
    name, at = commit.run.name, _ts(commit.at)
    run_values = _run_values(commit.run)
    check = (name, at, _text(commit.status_line), _text(commit.health), _json(commit.reasons))
    opened = [_alert_values(alert) for alert in commit.alerts_opened]
    messages = [(key, _message_values(msg, commit.at)) for key, msg in commit.messages]
    ids: list[int] = []
    cursor = await conn.execute(_SAVE_RUN, run_values)
    if cursor.rowcount != 1:  # rolled back: this check's view is out of date
        raise StaleRun(name)
    await conn.execute(
        "INSERT INTO checks (run, at, status_line, health, reasons) VALUES (?, ?, ?, ?, ?)",
        check,
    )
    for condition in commit.alerts_resolved:
        await conn.execute(
            "UPDATE alerts SET resolved_at = ? "
            "WHERE run = ? AND condition = ? AND resolved_at IS NULL",
            (at, name, condition),
        )
    await conn.executemany(
        "INSERT INTO alerts (run, condition, opened_at, last_sent_at, message) "
        "VALUES (?, ?, ?, ?, ?)",
        opened,
    )
    for condition in commit.alerts_resent:
        await conn.execute(
            "UPDATE alerts SET last_sent_at = ? "
            "WHERE run = ? AND condition = ? AND resolved_at IS NULL",
            (at, name, condition),
        )
    for key, values in messages:
        if (item_id := await _insert_message(conn, key, values)) is not None:
            ids.append(item_id)
    return ids
