"""The morning summary: due only after recent activity, queued once per local day."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.render import render_message
from bot.summary import enqueue_morning_summary, summary_due
from core.models import MessageKind, RunRecord
from tests.bot.conftest import T0


def record(name: str, *, live: bool, ended_hours_ago: float | None = None) -> RunRecord:
    ended = T0 - timedelta(hours=ended_hours_ago) if ended_hours_ago is not None else None
    return RunRecord(
        name=name, run_dir="/w", launched_at=T0 - timedelta(days=3), live=live, ended_at=ended
    )


def test_summary_is_due_with_a_live_run_or_one_that_ended_within_a_day():
    assert summary_due([record("a", live=True)], T0)
    assert summary_due([record("a", live=False, ended_hours_ago=23)], T0)
    assert not summary_due([record("a", live=False, ended_hours_ago=25)], T0)
    assert not summary_due([], T0)


async def test_it_queues_the_runs_text_once_per_local_day(store, control):
    await store.upsert_run(record("llama-ft", live=True))
    paris = ZoneInfo("Europe/Paris")

    first = await enqueue_morning_summary(control, store, T0, tz=paris)
    again = await enqueue_morning_summary(control, store, T0 + timedelta(hours=1), tz=paris)

    assert first is not None and again is None
    (item,) = await store.pending(T0)
    assert item.message.kind is MessageKind.SUMMARY
    text = render_message(item.message)
    assert "Morning summary. Runs: 1 live, 1 ended" in text
    assert text.index("llama-ft") < text.index("llava-eval")


async def test_it_is_skipped_when_nothing_ran_in_the_last_day(store, control):
    await store.upsert_run(record("old", live=False, ended_hours_ago=48))

    assert await enqueue_morning_summary(control, store, T0) is None
    assert await store.pending(T0) == []
