"""The store's buttons: the nonce behind each inline button of a loud alert, and each pending
/kill or /teardown confirmation, so that a press after a restart of `serve` still finds what
it stood for. A base class of core.store.Store.

Written by the Telegram notifier (bot/telegram.py, alert buttons) and by bot/confirm.py
(confirmations); read and used by the chat handlers (bot/handlers.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.store_db import Database
from core.store_rows import dt as _dt
from core.store_rows import dt_or_none as _dt_or_none
from core.store_rows import ts as _ts

BUTTON_KEEP_S = 30 * 86400.0  # rows older than this are pruned (their buttons say "expired")


@dataclass(frozen=True, slots=True)
class ButtonRow:
    nonce: str
    kind: str  # "alert" or "confirm"
    actions: tuple[str, ...]
    run: str
    chat_id: int
    user_id: int | None
    issued_at: datetime
    used_at: datetime | None = None


class ButtonTables(Database):
    """The buttons table (see the module docstring)."""

    async def put_button(self, row: ButtonRow) -> None:
        sql = (
            "INSERT INTO buttons (nonce, kind, actions, run, chat_id, user_id, issued_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        params = (
            row.nonce,
            row.kind,
            ",".join(row.actions),
            row.run,
            row.chat_id,
            row.user_id,
            _ts(row.issued_at),
        )
        await self._write("storing a button", sql, params)

    async def get_button(self, nonce: str) -> ButtonRow | None:
        sql = (
            "SELECT nonce, kind, actions, run, chat_id, user_id, issued_at, used_at "
            "FROM buttons WHERE nonce = ?"
        )
        rows = await self._fetch("reading a button", sql, (nonce[:40],))
        if not rows:
            return None
        nonce, kind, actions, run, chat_id, user_id, issued_at, used_at = rows[0]
        return ButtonRow(
            nonce=str(nonce),
            kind=str(kind),
            actions=tuple(a for a in str(actions).split(",") if a),
            run=str(run),
            chat_id=int(chat_id),
            user_id=None if user_id is None else int(user_id),
            issued_at=_dt(issued_at),
            used_at=_dt_or_none(used_at),
        )

    async def use_button(self, nonce: str, at: datetime) -> bool:
        """Mark a confirmation answered; False when it already was (a second press)."""
        sql = "UPDATE buttons SET used_at = ? WHERE nonce = ? AND used_at IS NULL"
        return await self._write("answering a button", sql, (_ts(at), nonce[:40])) == 1

    async def prune_buttons(self, now: datetime) -> int:
        before = _ts(now - timedelta(seconds=BUTTON_KEEP_S))
        return await self._write(
            "pruning buttons", "DELETE FROM buttons WHERE issued_at < ?", (before,)
        )
