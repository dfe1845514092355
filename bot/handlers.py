"""Chat commands and confirmation buttons. Every reply goes to the chat that asked; every
command is audited with its verdict. Run names from chat text only go to `Control.resolve`.

Registered by bot/telegram.build_dispatcher; they reach the watcher only through the Control
port (core.control.WatcherControl).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.auth import AuditLog
from bot.buttons import AlertButtons
from bot.charts import send_reply
from bot.commands import (
    Command,
    Extend,
    Help,
    Keep,
    Kill,
    Mute,
    Runs,
    Status,
    Teardown,
    UsageError,
    format_duration,
    help_text,
    parse_command,
)
from bot.confirm import (
    Action,
    AlertButton,
    Confirmations,
    PendingAction,
    confirm_keyboard,
    parse_callback,
)
from bot.render import esc, fmt_at, fmt_usd, render_runs, render_status
from core.answers import extension_answer, mute_answer
from core.errors import AmbiguousRun, SleepwatchError, UnknownRun
from core.models import Extension, RunView
from core.ports import Clock, Control
from core.vocab import TeardownState

log = logging.getLogger(__name__)

STALE_AFTER_S = 60.0
HTML = "HTML"
Reply = tuple[str, InlineKeyboardMarkup | None]


def esc_lines(text: str) -> str:
    return "\n".join(esc(line) for line in text.split("\n"))


def candidates_text(exc: UnknownRun | AmbiguousRun) -> str:
    names = ", ".join(exc.candidates) if exc.candidates else "none"
    if isinstance(exc, AmbiguousRun):
        return f"{esc(exc.name)} matches several runs: {esc(names)}. Give more of the name."
    return f"No run named {esc(exc.name)}. Known runs: {esc(names)}."


def price_text(view: RunView) -> str:
    if view.dph_total is None:
        return "hourly price unknown"
    spent = f", {fmt_usd(view.cost_usd)} so far" if view.cost_usd is not None else ""
    return f"{fmt_usd(view.dph_total)}/h{spent}"


def extension_text(name: str, moved: Extension, now: datetime, tz: tzinfo = UTC) -> str:
    return esc(extension_answer(name, moved, now, tz))


def confirm_prompt(action: str, view: RunView) -> str:
    instance = esc(view.instance_id) if view.instance_id else "(none recorded)"
    if action == "kill":
        what = (
            f"Stop run <b>{esc(view.name)}</b>? The supervisor ends the trainer and does not retry."
            f"\nInstance {instance} ({price_text(view)}) is then handled by the run's exit policy."
        )
    else:
        what = (
            f"Destroy instance {instance} of run <b>{esc(view.name)}</b> now? "
            f"Whatever is on it and not copied off is lost.\nIt costs {price_text(view)}."
            f"\nOutputs: {esc(view.outputs or 'none collected (`sleepwatch collect RUN` first)')}"
        )
    return f"<code>{esc(view.status_line)}</code>\n{what}\nConfirm within 60 s."


class ChatCommands:
    """`tz`: the zone the person reads times in (`[telegram] timezone`)."""

    def __init__(
        self,
        control: Control,
        audit: AuditLog,
        clock: Clock,
        confirmations: Confirmations,
        tz: tzinfo = UTC,
    ) -> None:
        self._control = control
        self._audit = audit
        self._clock = clock
        self._confirmations = confirmations
        self.tz = tz

    def router(self) -> Router:
        router = Router(name="sleepwatch")
        router.message.register(self.on_message, F.text)
        alerts = AlertButtons(self, self._confirmations.store, self._clock)
        router.callback_query.register(alerts.on_press, AlertButton.filter())
        router.callback_query.register(self.on_button)
        return router

    async def record(
        self, at: datetime, chat_id: int | None, user: int | None, what: str, verdict: str
    ) -> None:
        await self._audit.audit(
            at=at, chat_id=chat_id, user_id=user, command=what[:256], verdict=verdict
        )

    async def on_message(self, message: Message, bot: Bot) -> None:
        now, text = self._clock(), message.text or ""
        user = message.from_user.id if message.from_user else None
        me = await bot.me()
        try:
            command = parse_command(text, bot_username=me.username)
        except UsageError as exc:
            await message.answer(esc_lines(str(exc)), parse_mode=HTML)
            await self.record(now, message.chat.id, user, text, "usage")
            return
        if command is None:
            return
        age_s = (now - message.date).total_seconds()
        if age_s > STALE_AFTER_S:
            await message.answer(self._stale_text(text, message.date, age_s, now), parse_mode=HTML)
            await self.record(now, message.chat.id, user, text, "stale")
            return
        reply, keyboard, verdict = await self.answer(command, message.chat.id, user, now)
        chart = await self._chart(command) if verdict == "ok" else None
        await send_reply(message, reply, keyboard, chart)
        await self.record(now, message.chat.id, user, text, verdict)

    async def _chart(self, command: Command) -> bytes | None:
        """/status comes with the run's chart where it has one (a picture is never worth a
        failed answer: any failure to get it leaves the text alone)."""
        if not isinstance(command, Status):
            return None
        try:
            return await self._control.chart(await self._resolve(command.run))
        except SleepwatchError as exc:
            log.info("no chart for %s: %s", command.run, exc)
            return None

    def _stale_text(self, text: str, sent_at: datetime, age_s: float, now: datetime) -> str:
        return (
            f"Ignored {esc(text, 80)}: it was sent at {fmt_at(sent_at, now, self.tz)}, "
            f"{format_duration(round(age_s))} ago, while sleepwatch could not read it. "
            f"Commands older than {round(STALE_AFTER_S)} s are not executed; "
            "send it again if you still want it."
        )

    async def answer(
        self, command: Command, chat_id: int, user_id: int | None, now: datetime
    ) -> tuple[str, InlineKeyboardMarkup | None, str]:
        """The reply to a command (typed, or a button's), its keyboard and the audit verdict."""
        try:
            reply, keyboard = await self._execute(command, chat_id, user_id, now)
        except (UnknownRun, AmbiguousRun) as exc:
            return candidates_text(exc), None, "unknown_run"
        except SleepwatchError as exc:
            return f"Failed: {esc(str(exc))}", None, "error"
        return reply, keyboard, "ok"

    async def _execute(
        self, command: Command, chat_id: int, user_id: int | None, now: datetime
    ) -> Reply:
        match command:
            case Help():
                return esc_lines(help_text()), None
            case Runs():
                views = await self._control.list_runs(now)
                return render_runs(views, now, tz=self.tz), None
            case Status(run):
                view = await self._control.view(await self._resolve(run), now)
                return render_status(view, now, tz=self.tz), None
            case Mute(run, seconds):
                name = await self._resolve(run)
                until = await self._control.mute(name, seconds, now)
                return esc(mute_answer(name, until, now, self.tz)), None
            case Extend(run, seconds):
                name = await self._resolve(run)
                moved = await self._control.extend(name, seconds, now)
                return extension_text(name, moved, now, self.tz), None
            case Keep(run):
                name = await self._resolve(run)
                return esc(await self._control.keep(name, now)), None
            case Kill(run):
                return await self._ask("kill", await self._resolve(run), chat_id, user_id, now)
            case Teardown(run):
                name = await self._resolve(run)
                return await self._ask("teardown", name, chat_id, user_id, now)

    async def _resolve(self, run: str) -> str:
        return await self._control.resolve(run)

    async def _ask(
        self, action: Action, name: str, chat_id: int, user_id: int | None, now: datetime
    ) -> Reply:
        view = await self._control.view(name, now)
        refusal = self._pointless(action, view)
        if refusal is not None:
            return refusal, None
        nonce = await self._confirmations.issue(action, name, chat_id, user_id, now)
        return confirm_prompt(action, view), confirm_keyboard(nonce)

    @staticmethod
    def _pointless(action: str, view: RunView) -> str | None:
        if action == "kill" and not view.live:
            return f"Run {esc(view.name)} has already ended; there is nothing to stop."
        if action == "teardown" and view.teardown == TeardownState.DESTROYED:
            return f"The instance of {esc(view.name)} is already destroyed."
        if action == "teardown" and view.instance_id is None:
            hint = f" /kill {esc(view.name)} stops the run." if view.live else ""
            return (
                f"Run {esc(view.name)} has no cloud instance (it runs on this machine or on a "
                f"host you manage): there is nothing to destroy.{hint}"
            )
        return None

    async def on_button(self, query: CallbackQuery) -> None:
        now = self._clock()
        chat_id = query.message.chat.id if query.message is not None else None
        parsed = parse_callback(query.data or "")
        user_id = query.from_user.id
        pending = (
            await self._confirmations.take(parsed[1], chat_id, user_id, now) if parsed else None
        )
        if parsed is None or pending is None:
            await query.answer("This button is no longer valid.")
            await self.record(now, chat_id, query.from_user.id, query.data or "", "expired")
            return
        what = f"/{pending.action} {pending.run}"
        if parsed[0] == "no":
            await query.answer("Cancelled.")
            await self._settle(query, f"Cancelled: {esc(what)}")
            await self.record(now, chat_id, query.from_user.id, what, "cancelled")
            return
        if self._confirmations.expired(pending, now):
            await query.answer("Too late: confirm within 60 s.")
            await self._settle(query, f"Expired: {esc(what)} was not confirmed within 60 s.")
            await self.record(now, chat_id, query.from_user.id, what, "expired")
            return
        await query.answer("Working…")
        result, verdict = await self._act(pending, now)
        await self._settle(query, result)
        await self.record(now, chat_id, query.from_user.id, what, verdict)

    async def _act(self, pending: PendingAction, now: datetime) -> tuple[str, str]:
        try:
            view = await self._control.view(pending.run, now)  # state may have moved on
            refusal = self._pointless(pending.action, view)
            if refusal is not None:
                return refusal, "moot"
            if pending.action == "kill":
                return esc(await self._control.kill(pending.run), 2000), "executed"
            return esc(await self._control.teardown(pending.run), 2000), "executed"
        except SleepwatchError as exc:
            log.warning("%s %s failed: %s", pending.action, pending.run, exc)
            return f"Failed: {esc(str(exc))}", "error"

    @staticmethod
    async def _settle(query: CallbackQuery, text: str) -> None:
        if isinstance(query.message, Message):
            await query.message.edit_text(text, parse_mode=HTML, reply_markup=None)
