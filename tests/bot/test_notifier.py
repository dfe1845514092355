"""Alerts through the outbox, the Telegram notifier and aiogram's real session to the fake."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.render import render_message
from bot.telegram import TelegramNotifier
from core.chart import render_png
from core.errors import DeliveryError
from core.metric_history import MetricHistory
from core.models import MessageKind, OutboundMessage
from core.outbox import OutboxSender
from tests.bot.conftest import ALLOWED_CHAT, LLAMA_LINE, OTHER_ALLOWED_CHAT


def alert(
    title: str, *, lines: tuple[str, ...] = ("x = <1> & 2",), chat_id=None
) -> OutboundMessage:
    return OutboundMessage(
        kind=MessageKind.ALERT,
        title=title,
        run="llama-ft",
        status_line=LLAMA_LINE,
        reasons=("traceback in new log text",),
        log_lines=lines,
        chat_id=chat_id,
    )


def terminal(title: str) -> OutboundMessage:
    return OutboundMessage(kind=MessageKind.TERMINAL, title=title, status_line=LLAMA_LINE)


@pytest.fixture
def sender(store, bot, clock):
    async def fake_sleep(seconds: float) -> None:
        clock.advance(seconds)

    notifier = TelegramNotifier(bot, [ALLOWED_CHAT])
    return OutboxSender(store, notifier, clock, sleep=fake_sleep)


async def test_an_alert_arrives_with_its_status_line_and_escaped_log(
    store, sender, clock, fake_telegram
):
    await store.enqueue(alert("llama-ft: traceback"), dedupe_key="a1", at=clock())

    assert await sender.drain_once() == 1
    (sent,) = fake_telegram.sent
    assert sent["chat_id"] == ALLOWED_CHAT and sent["parse_mode"] == "HTML"
    assert sent["text"].split("\n")[1] == f"<code>{LLAMA_LINE}</code>"
    assert "<pre>x = &lt;1&gt; &amp; 2</pre>" in sent["text"]


async def test_a_10000_line_traceback_goes_out_as_one_message_under_the_limit(
    store, sender, clock, fake_telegram
):
    lines = ("Traceback (most recent call last):", *(f"  frame {i}" for i in range(10_000)))
    await store.enqueue(alert("boom", lines=lines), dedupe_key="a1", at=clock())

    assert await sender.drain_once() == 1
    (sent,) = fake_telegram.sent
    assert len(sent["text"]) < 4096
    assert sent["text"].startswith(f"<b>boom</b>\n<code>{LLAMA_LINE}</code>")


async def test_429_retry_after_is_honoured_and_the_order_kept(store, sender, clock, fake_telegram):
    for name in ("first", "second", "third"):
        await store.enqueue(terminal(name), dedupe_key=name, at=clock())
    fake_telegram.fail_next("sendMessage", "429", retry_after=5)

    assert await sender.drain_once() == 0
    clock.advance(4)
    assert await sender.drain_once() == 0
    assert fake_telegram.sent == []
    clock.advance(1)
    assert await sender.drain_once() == 3
    titles = [m["text"].split("\n")[0] for m in fake_telegram.sent]
    assert titles == ["<b>first</b>", "<b>second</b>", "<b>third</b>"]
    assert await store.outbox_counts() == (3, 0)


@pytest.mark.parametrize(
    ("retry_after", "deferred_s"),
    # aiogram refuses a retry_after that is not an int (1e300, nan, inf): a transient error,
    # retried after the first backoff step (2 s)
    [(-5, 0.0), (10**20, 3600.0), (1e300, 2.0), (float("nan"), 2.0), (float("inf"), 2.0)],
    ids=["negative", "huge-int", "huge-float", "nan", "inf"],
)
async def test_an_odd_telegram_retry_after_is_clamped_and_the_message_still_goes_out(
    store, sender, clock, fake_telegram, retry_after, deferred_s
):
    await store.enqueue(terminal("one"), dedupe_key="one", at=clock())
    fake_telegram.fail_next("sendMessage", "429", retry_after=retry_after)

    assert await sender.drain_once() == 0  # no exception out of the sender
    assert sender.not_before == clock() + timedelta(seconds=deferred_s)
    clock.advance(deferred_s)
    assert await sender.drain_once() == 1
    assert len(fake_telegram.sent) == 1


async def test_a_500_is_retried_after_a_backoff(store, sender, clock, fake_telegram):
    await store.enqueue(terminal("one"), dedupe_key="one", at=clock())
    fake_telegram.fail_next("sendMessage", "500")

    assert await sender.drain_once() == 0
    clock.advance(2)
    assert await sender.drain_once() == 1


async def test_a_restart_after_a_failure_loses_and_repeats_nothing(
    store, bot, clock, fake_telegram
):
    await store.enqueue(terminal("one"), dedupe_key="one", at=clock())
    await store.enqueue(terminal("two"), dedupe_key="two", at=clock())
    fake_telegram.fail_next("sendMessage", "disconnect")
    notifier = TelegramNotifier(bot, [ALLOWED_CHAT])

    assert await OutboxSender(store, notifier, clock).drain_once() == 0
    clock.advance(60)
    restarted = OutboxSender(store, TelegramNotifier(bot, [ALLOWED_CHAT]), clock, min_gap_s=0)
    assert await restarted.drain_once() == 2
    assert await restarted.drain_once() == 0
    assert len(fake_telegram.sent) == 2


async def test_alerts_created_together_arrive_as_one_message(store, sender, clock, fake_telegram):
    await store.enqueue(alert("loss is nan"), dedupe_key="a1", at=clock())
    await store.enqueue(alert("gpu idle"), dedupe_key="a2", at=clock() + timedelta(seconds=1))
    clock.advance(2)

    assert await sender.drain_once() == 2
    (sent,) = fake_telegram.sent
    assert "2 alerts: loss is nan; gpu idle" in sent["text"]


async def test_errors_are_translated_at_the_seam(bot, fake_telegram):
    notifier = TelegramNotifier(bot, [ALLOWED_CHAT])
    fake_telegram.fail_next("sendMessage", "429", retry_after=7)
    fake_telegram.fail_next("sendMessage", "500")
    fake_telegram.fail_next("sendMessage", "400")
    fake_telegram.fail_next("sendMessage", "403")

    errors = []
    for _ in range(4):
        with pytest.raises(DeliveryError) as caught:
            await notifier.deliver(terminal("x"))
        errors.append((caught.value.retry_after_s, caught.value.permanent))
    assert errors == [(7, False), (None, False), (None, True), (None, True)]


async def test_a_broadcast_retried_after_a_failure_skips_chats_that_have_it(bot, fake_telegram):
    notifier = TelegramNotifier(bot, [ALLOWED_CHAT, OTHER_ALLOWED_CHAT])
    message = terminal("done")
    fake_telegram.fail_next("sendMessage", "500", chat_id=OTHER_ALLOWED_CHAT)

    with pytest.raises(DeliveryError):
        await notifier.deliver(message)
    await notifier.deliver(message)  # the outbox's retry
    await notifier.deliver(alert("to one chat", chat_id=OTHER_ALLOWED_CHAT))

    chats = [m["chat_id"] for m in fake_telegram.sent]
    assert chats == [ALLOWED_CHAT, OTHER_ALLOWED_CHAT, OTHER_ALLOWED_CHAT]


async def test_only_a_loud_message_makes_a_sound(store, sender, clock, fake_telegram):
    quiet = OutboundMessage(kind=MessageKind.RECOVERY, title="recovered", loud=False)
    loud = OutboundMessage(kind=MessageKind.ALERT, title="needs you", loud=True)
    await store.enqueue(quiet, dedupe_key="q", at=clock())
    await store.enqueue(loud, dedupe_key="l", at=clock())

    assert await sender.drain_once() == 2
    flags = [(m["text"].split("\n")[0], m["disable_notification"]) for m in fake_telegram.sent]
    assert flags == [("<b>recovered</b>", True), ("<b>needs you</b>", False)]


# --- a picture of the run: the chart goes as a photo -----------------------------------------


def charted(tmp_path, *, lines: tuple[str, ...] = ()) -> OutboundMessage:
    history = MetricHistory.model_validate(
        {"loss": {"points": [[s, 3.0 / s] for s in range(1, 100)]}, "attempts": [[1, 0]]}
    )
    png = render_png(history, "llama-ft")
    assert png is not None
    path = tmp_path / "llama-ft.png"
    path.write_bytes(png)
    return OutboundMessage(
        kind=MessageKind.TERMINAL,
        title="llama-ft done",
        status_line=LLAMA_LINE,
        log_lines=lines,
        chart=str(path),
    )


async def test_a_charted_message_is_one_photo_with_the_text_as_its_caption(
    bot, fake_telegram, tmp_path
):
    message = charted(tmp_path)
    await TelegramNotifier(bot, [ALLOWED_CHAT]).deliver(message)

    (sent,) = fake_telegram.sent
    assert fake_telegram.methods() == ["sendPhoto"]
    assert fake_telegram.photos == [(tmp_path / "llama-ft.png").read_bytes()]
    assert sent["text"] == render_message(message) and sent["parse_mode"] == "HTML"


async def test_a_text_too_long_for_a_caption_follows_the_photo_whole(bot, fake_telegram, tmp_path):
    message = charted(tmp_path, lines=tuple(f"step {i} <ok>" for i in range(200)))
    notifier = TelegramNotifier(bot, [ALLOWED_CHAT])
    fake_telegram.fail_next("sendPhoto", "500")

    with pytest.raises(DeliveryError):  # the text went, its chart did not
        await notifier.deliver(message)
    await notifier.deliver(message)  # the outbox's retry sends only what is missing

    assert fake_telegram.methods() == ["sendMessage", "sendPhoto", "sendPhoto"]
    text, photo = fake_telegram.sent
    assert text["text"] == render_message(message) and len(text["text"]) > 1024
    assert photo["text"] == "llama-ft done"
    assert fake_telegram.photos[-1] == (tmp_path / "llama-ft.png").read_bytes()
    assert photo["disable_notification"] is True  # one buzz: the text's


async def test_a_chart_whose_file_is_gone_leaves_the_text_alone(bot, fake_telegram, tmp_path):
    message = charted(tmp_path)
    (tmp_path / "llama-ft.png").unlink()
    await TelegramNotifier(bot, [ALLOWED_CHAT]).deliver(message)
    assert fake_telegram.methods() == ["sendMessage"]


async def test_the_links_a_log_printed_are_url_buttons_even_on_a_silent_end(bot, fake_telegram):
    run_page = "https://wandb.ai/ada/llama/runs/abc123"
    message = OutboundMessage(
        kind=MessageKind.TERMINAL,
        title="llama-ft done",
        links=(("W&B run", run_page), ("HF Hub", "https://huggingface.co/ada/llama-ft")),
    )
    await TelegramNotifier(bot, [ALLOWED_CHAT]).deliver(message)

    (sent,) = fake_telegram.sent
    assert sent["disable_notification"] is True
    (row,) = sent["reply_markup"]["inline_keyboard"]
    assert [(b["text"], b["url"]) for b in row] == list(message.links)
