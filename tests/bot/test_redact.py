"""The token never leaves in a log line: message, arguments, traceback, URL-encoded or not."""

from __future__ import annotations

import io
import logging
from urllib.parse import quote

from bot.telegram import REDACTED, RedactToken, redact

TOKEN = "123456:TESTsecretsecretsecret0123456789"


def test_every_form_of_the_token_is_redacted() -> None:
    url = f"http://127.0.0.1/bot{TOKEN}/sendMessage?x=1"
    text = f"{url} {quote(url, safe='')} {TOKEN.split(':')[1]}"
    cleaned = redact(text, TOKEN)
    assert "secretsecret" not in cleaned
    assert cleaned.count(REDACTED) == 3


def test_a_log_line_and_its_traceback_carry_no_token() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactToken(TOKEN))
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"TooManyRedirects: http://127.0.0.1/bot{TOKEN}/getUpdates")
        except RuntimeError:
            logger.exception("polling failed for %s", f"/bot{TOKEN}/getMe")
        logger.warning("bad %s %s", "args")  # a malformed record still does not raise here
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "TooManyRedirects" in text and "polling failed for /bot" in text
    assert "secretsecret" not in text
