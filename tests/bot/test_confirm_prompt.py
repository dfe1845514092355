"""The /teardown question says what has come off the instance, so nobody destroys the only copy
of a model without being told."""

from __future__ import annotations

from bot.handlers import confirm_prompt
from core.models import RunView

LINE = "2026-11-28T03:12:09Z done 1/3 90000/90000 - - - llama-ft"


def test_the_teardown_question_says_what_was_collected() -> None:
    view = RunView(
        name="llama-ft",
        live=False,
        status_line=LINE,
        instance_id="4242",
        outputs="3 files, 14.2 GB in …/outputs/llama-ft, verified",
    )
    assert "Outputs: 3 files, 14.2 GB in …/outputs/llama-ft, verified" in confirm_prompt(
        "teardown", view
    )


def test_the_teardown_question_says_when_nothing_was_collected() -> None:
    view = RunView(name="llama-ft", live=True, status_line=LINE, instance_id="4242")
    assert "Outputs: none collected (`sleepwatch collect RUN` first)" in confirm_prompt(
        "teardown", view
    )
