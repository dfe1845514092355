"""Links a run's log prints that a person wants one tap away: its experiment-tracker page
(Weights & Biases, Comet, Neptune), its TensorBoard.dev board, its Hugging Face Hub repository.

Called by core/exits.py on the log tail of a terminal message; the Telegram notifier shows them as
URL buttons, the console prints them. Pure. The log is untrusted: only https URLs on the hosts
below are taken (never a `javascript:` or look-alike host), each cut at the first character
that cannot be part of a URL, at most `MAX_LINKS`, each at most `MAX_URL` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_LINKS = 3
MAX_URL = 300

# host (exact, or a subdomain of it) -> the button's label
HOSTS = {
    "wandb.ai": "W&B run",
    "comet.com": "Comet",
    "app.neptune.ai": "Neptune",
    "tensorboard.dev": "TensorBoard",
    "huggingface.co": "HF Hub",
}
_URL = re.compile(r"https://([A-Za-z0-9.-]{1,100})(/[A-Za-z0-9._~/?#&=%+:@!$,;*-]*)?")
# what a trailing character of prose is, not of the URL: "see https://x.y/z." or "(https://…)"
_TRAILING = ".,;:!?)]}'\""


def links_in(lines: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(label, url) for each distinct tracker link, newest last, at most MAX_LINKS."""
    found: dict[str, str] = {}
    for line in lines:
        for match in _URL.finditer(line):
            label = _label(match.group(1).lower())
            if label is None:
                continue
            url = match.group(0).rstrip(_TRAILING)
            if len(url) <= MAX_URL and _is_page(url):
                found.pop(url, None)
                found[url] = label
    newest = list(found.items())[-MAX_LINKS:]
    return tuple((label, url) for url, label in newest)


def _label(host: str) -> str | None:
    for known, label in HOSTS.items():
        if host == known or host.endswith("." + known):
            return label
    return None


def _is_page(url: str) -> bool:
    """A run or repository page, not the site's front page or its docs."""
    path = url.split("://", 1)[1].partition("/")[2]
    return path.count("/") >= 1 and not path.startswith(("docs", "site", "login", "settings"))
