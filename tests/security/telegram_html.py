"""What Telegram's HTML parser accepts, as a test assertion: only its own tags, balanced; every
`&` an entity; no `<` outside a tag; no control characters; at most 4096 characters."""

from __future__ import annotations

import re

from bot.render import TELEGRAM_LIMIT, tg_len

_TAG = re.compile(r"<(/?)(b|i|u|s|code|pre)>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def assert_telegram_html(text: str) -> None:
    assert tg_len(text) <= TELEGRAM_LIMIT, f"{tg_len(text)} UTF-16 units"
    assert not _CONTROL.search(text), repr(_CONTROL.search(text))
    open_tags: list[str] = []
    for match in _TAG.finditer(text):
        closing, name = match.groups()
        if closing:
            assert open_tags and open_tags[-1] == name, f"unbalanced </{name}> in {text!r}"
            open_tags.pop()
        else:
            assert name not in open_tags, f"nested <{name}>"
            open_tags.append(name)
    assert not open_tags, f"unclosed {open_tags}"
    bare = _TAG.sub("", text)
    assert "<" not in bare, f"a raw '<' Telegram would parse as a tag: {bare!r}"
    assert not re.search(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)", bare), bare
    assert _ENTITY.sub("", bare).count("&") == 0
