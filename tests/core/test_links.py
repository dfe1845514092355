"""Tracker links a log prints become buttons: only real https pages on the known hosts."""

from __future__ import annotations

import json

from core.links import MAX_LINKS, MAX_URL, links_in
from core.models import MessageKind, OutboundMessage
from core.protocol import parse_probe
from core.run_chart import with_links

RUN = "https://wandb.ai/ada/llama/runs/abc123"


def test_a_tracker_page_and_a_hub_repo_are_found_once_each_newest_last() -> None:
    lines = [
        f"wandb: 🚀 View run fancy-sun-3 at: {RUN}",
        "pushed to the hub (https://huggingface.co/ada/llama-ft).",
        f"wandb: Synced fancy-sun-3: {RUN}",
    ]
    assert links_in(lines) == (
        ("HF Hub", "https://huggingface.co/ada/llama-ft"),
        ("W&B run", RUN),
    )


def test_look_alike_hosts_other_schemes_and_front_pages_are_not_links() -> None:
    lines = [
        "https://wandb.ai.evil.example/a/b",
        "https://evilwandb.ai/a/b",
        "http://wandb.ai/ada/llama/runs/x",
        "javascript:alert(1)//https:/wandb.ai",
        "https://wandb.ai/",
        "https://huggingface.co/docs/transformers",
        "https://wandb.ai/site/pricing",
    ]
    assert links_in(lines) == ()


def test_a_hostile_log_yields_a_few_short_links() -> None:
    lines = [" ".join(f"https://wandb.ai/a/p/runs/{i}" for i in range(5000))]
    lines.append("https://huggingface.co/" + "a/" * 500)
    found = links_in(lines)
    assert len(found) == MAX_LINKS and all(len(url) <= MAX_URL for _, url in found)
    assert found[-1] == ("W&B run", "https://wandb.ai/a/p/runs/4999")


def test_links_survive_the_outbox_round_trip() -> None:
    message = OutboundMessage(kind=MessageKind.TERMINAL, title="done", links=(("W&B run", RUN),))
    assert OutboundMessage.from_json(message.to_json()) == message


def test_a_terminal_message_takes_its_links_from_the_probes_log_tail() -> None:
    doc = {"probe": 1, "at": "2026-11-30T03:00:00Z", "tail": ["step 9/9", f"wandb: {RUN}"]}
    message = OutboundMessage(kind=MessageKind.TERMINAL, title="done")
    assert with_links(message, parse_probe(json.dumps(doc))).links == (("W&B run", RUN),)
    assert with_links(message, None) == message
