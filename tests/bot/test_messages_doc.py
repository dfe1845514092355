"""docs/messages.md and the README's loud/silent table are generated from the renderers: this
fails when either is stale (run `python -m bot.messages_doc`)."""

from __future__ import annotations

from bot import messages_doc
from core.topics import TOPICS


def test_the_messages_doc_and_the_readme_table_are_up_to_date() -> None:
    assert messages_doc.main(["--check"]) == 0


def test_the_table_has_a_row_for_every_message_kind() -> None:
    rows = messages_doc.table().splitlines()[2:]
    assert len(rows) == len(TOPICS)
    assert all(row.count(" | ") == 3 for row in rows)


def test_a_changed_renderer_makes_the_doc_stale(monkeypatch) -> None:
    monkeypatch.setattr(messages_doc, "table", lambda: "| a changed table |")
    assert messages_doc.main(["--check"]) == 1
