"""What the watcher answers a human who asks (/runs, /status, /mute, /extend in chat; `sleepwatch
runs|status|mute|extend` on the command line), in plain words: ONE home for those answers, so the
chat and the CLI say the same thing. Pure.

Called by bot/render.py and bot/handlers.py (which escape these words and add Telegram's HTML:
bold, <code>, <pre>), bot/summary.py (the morning /runs) and core/cli.py (which prints them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from core.durations import format_duration
from core.models import Extension, RunView


def fmt_at(at: datetime, now: datetime, tz: tzinfo = UTC) -> str:
    """A moment as the person reads it, in `tz` (`[telegram] timezone`): the time, with the date
    when not today. UTC keeps its `Z`; another zone says its name (`09:30:00 CET`)."""
    at, now = at.astimezone(tz), now.astimezone(tz)
    today = at.date() == now.date()
    if tz is UTC:
        return at.strftime("%H:%M:%SZ" if today else "%Y-%m-%d %H:%MZ")
    return at.strftime("%H:%M:%S %Z" if today else "%Y-%m-%d %H:%M %Z")


def fmt_usd(amount: float) -> str:
    return f"${amount:,.2f}"


def run_lines(view: RunView, now: datetime, tz: tzinfo = UTC) -> list[str]:
    """The status line, then one line of what else a human wants to know."""
    facts = ["live" if view.live else "ended"]
    if view.kept:
        facts.insert(0, "KEPT: instance still billing (/teardown or /keep)")
    if view.cost_usd is not None:
        rate = f" at {fmt_usd(view.dph_total)}/h" if view.dph_total is not None else ""
        facts.append(f"{fmt_usd(view.cost_usd)} so far{rate}")
    if view.projected_usd is not None:
        facts.append(f"~{fmt_usd(view.projected_usd)} projected to the last step")
    if view.live and view.cost_limit_usd is not None:
        facts.append(f"max_cost {fmt_usd(view.cost_limit_usd)}")
    if view.muted_until is not None and view.muted_until > now:
        facts.append(f"muted until {fmt_at(view.muted_until, now, tz)}")
    if view.live and view.deadline_at is not None:
        facts.append(f"deadline {fmt_at(view.deadline_at, now, tz)}")
    if view.heavier is not None:
        since, was, steps_s = view.heavier
        facts.append(
            f"steps heavier since {fmt_at(since, now, tz)}, GPU as busy: "
            f"{steps_s:.2f} steps/s taken as its rate (was {was:.2f})"
        )
    if view.teardown:
        facts.append(f"instance {view.teardown}")
    if view.outputs:
        facts.append(f"outputs: {view.outputs}")
    return [view.status_line, "  " + " · ".join(facts)]


def runs_text_lines(views: Sequence[RunView], now: datetime, tz: tzinfo = UTC) -> list[str]:
    # kept instances (billing after their run ended) first, then live runs; stable: newest first
    ordered = sorted(views, key=lambda v: (not v.kept, not v.live))
    return [line for view in ordered for line in run_lines(view, now, tz)]


def runs_title(views: Sequence[RunView]) -> str:
    live = sum(1 for v in views if v.live)
    kept = sum(1 for v in views if v.kept)
    billing = f", {kept} kept instance{'s' if kept > 1 else ''} billing" if kept else ""
    return f"Runs: {live} live, {len(views) - live} ended{billing}" if views else "No runs yet"


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """The /status answer in parts, so the chat can set each in its own markup."""

    status_line: str
    name: str
    facts: str
    details: tuple[str, ...]  # cadence, next check, instance: each a line
    tail: tuple[str, ...]  # the last log lines, as the instance wrote them

    def lines(self) -> list[str]:
        """Plain text, for a terminal."""
        return [self.status_line, self.name, self.facts, *self.details, *self.tail]


def status_answer(view: RunView, now: datetime, tz: tzinfo = UTC) -> StatusAnswer:
    """Status line, name, facts, cadence and next check (live runs), instance, then the log."""
    details = []
    if view.live:
        cadence = f"every {format_duration(round(view.interval_s))}" if view.interval_s else "-"
        details.append(f"cadence: {cadence}")
        if view.next_check_at is not None:
            wait_s = max(0, round((view.next_check_at - now).total_seconds()))
            when = fmt_at(view.next_check_at, now, tz)
            details.append(f"next check: {when} (in {format_duration(wait_s)})")
    if view.instance_id:
        details.append(f"instance: {view.instance_id}")
    facts = run_lines(view, now, tz)[1].strip()
    return StatusAnswer(view.status_line, view.name, facts, tuple(details), view.tail)


def mute_answer(run: str, until: datetime, now: datetime, tz: tzinfo = UTC) -> str:
    return f"Soft alerts of {run} muted until {fmt_at(until, now, tz)}."


def extension_answer(run: str, moved: Extension, now: datetime, tz: tzinfo = UTC) -> str:
    parts = []
    if moved.deadline_at is not None:
        parts.append(f"Deadline of {run} is now {fmt_at(moved.deadline_at, now, tz)}.")
    if moved.cost_limit_usd is not None:
        parts.append(f"max_cost of {run} is now {fmt_usd(moved.cost_limit_usd)}.")
    return " ".join(parts) or f"Nothing to extend for {run}."
