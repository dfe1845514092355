"""The bot token never leaves this process in a log line or an error text: `redact` takes it
out of any text (whole or its secret half, plain or URL-encoded), and `redact_logs` puts a
filter that does so on every handler of the root logger.

Called by bot/app.py (redact_logs, once the token is read) and bot/notifier.py (every
delivery error); bot.telegram re-exports these names.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from pydantic import SecretStr

REDACTED = "<token>"


def redact(text: str, token: str) -> str:
    """`text` without the token, whole or its secret half, plain or URL-encoded (aiohttp puts
    the request URL, `/bot<token>/<method>`, into its errors: a redirect loop, a bad proxy)."""
    secret = token.split(":", 1)[-1]
    for form in (token, quote(token, safe=""), quote(token), secret, quote(secret, safe="")):
        if len(form) >= 8:
            text = text.replace(form, REDACTED)
    return text


class RedactToken(logging.Filter):
    """On the root logger's handlers: no log line (message, arguments or traceback) carries the
    token, whichever library wrote it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself
            return True
        record.msg = redact(message, self._token)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._token)
        return True


def redact_logs(token: SecretStr) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactToken(token.get_secret_value()))
