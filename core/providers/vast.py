"""Vast.ai instance API (show, destroy, label) over aiohttp: `core.ports.Provider` for runs
whose `provider` is "vast". Built by the composition root (core/runtime.py) when VAST_API_KEY is
set; the watcher, exits and launch reach it through `provider_for(run)`. Vast's statuses, its
instance ids and its console live here and in core/providers/vast_model.py (the instance JSON
as we read it, its statuses in provider-neutral words; re-exported here) and nowhere else.

A small client rather than the `vastai` package: its `VastAI` class is synchronous (requests,
built around the CLI), and its only async client is the serverless one, which also puts the
key in the query string. Here the key travels only in the Authorization header, never in a
URL, a log line, an exception or a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import SecretStr, ValidationError

from core.errors import ProviderError
from core.models import InstanceInfo
from core.providers.vast_model import CONSOLE_URL as CONSOLE_URL
from core.providers.vast_model import VastInstance as VastInstance
from core.providers.vast_model import id_problem as id_problem
from core.providers.vast_model import vast_state as vast_state
from core.retry_after import retry_after_s

if TYPE_CHECKING:
    from core.config import Config, Secrets

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

RETRY_AFTER_CAP_S = 300.0
"""A Retry-After above this is cut to it, so one answer cannot park a teardown for hours."""

_EXCERPT_CHARS = 200


class VastProvider:
    """`core.ports.Provider` for Vast.ai.

    HTTP 429 and 5xx and network errors are retried `max_retries` times, waiting the
    Retry-After the server sent (seconds; capped at RETRY_AFTER_CAP_S) or else
    `base_delay_s * 2**n` capped at `max_delay_s`; then ProviderError(permanent=False).
    Other 3xx/4xx answers raise ProviderError(permanent=True) at once. A 404 is "gone":
    `show` returns None and `destroy` returns quietly. A session passed in is the caller's
    to close; one made here is closed by `close()` (or `async with`).
    """

    name: str = "vast"

    def __init__(
        self,
        api_base: str,
        api_key: SecretStr,
        *,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
        max_retries: int = 4,
        base_delay_s: float = 2.0,
        max_delay_s: float = 60.0,
        timeout_s: float = 30.0,
    ) -> None:
        self._api_base = api_base.rstrip("/")
        self._api_key = api_key
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep
        self._max_retries = max_retries
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        return f"VastProvider(api_base={self._api_base!r}, api_key={self._api_key!r})"

    async def __aenter__(self) -> VastProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def show(self, instance_id: str) -> InstanceInfo | None:
        status, doc = await self._request("GET", instance_id)
        if status == 404:
            return None
        self._raise_if_refused(status, doc, "GET", instance_id)
        return self._instance_from(doc, status, instance_id)

    def _instance_from(self, doc: Any, status: int, instance_id: str) -> InstanceInfo | None:
        """Gone only on an explicit empty answer (`"instances"` null, `{}` or `[]`). Anything
        else that is not one instance object (an HTML error page, `{}`, truncated JSON, a
        proxy's text) is a transient ProviderError: reading it as "gone" would skip a DELETE
        and report a billing instance destroyed."""
        if isinstance(doc, dict) and "instances" in doc:
            raw = doc["instances"]
            if isinstance(raw, list) and len(raw) <= 1:
                raw = raw[0] if raw else None
            if raw is None or raw == {}:
                return None
            if isinstance(raw, dict):
                try:
                    return VastInstance.model_validate(raw).to_info(instance_id)
                except ValidationError as exc:
                    what = f"instance JSON with {exc.error_count()} unreadable fields"
                    raise self._unreadable(status, instance_id, what) from None
        raise self._unreadable(status, instance_id, self._excerpt(doc))

    def _unreadable(self, status: int, instance_id: str, what: str) -> ProviderError:
        reason = f"unreadable answer to GET instance {instance_id} (HTTP {status}): {what}"
        return ProviderError(reason, status=status, permanent=False)

    async def destroy(self, instance_id: str) -> None:
        status, doc = await self._request("DELETE", instance_id)
        if status == 404:
            return
        self._raise_if_refused(status, doc, "DELETE", instance_id)

    async def label(self, instance_id: str, label: str) -> None:
        status, doc = await self._request("PUT", instance_id, {"label": label})
        self._raise_if_refused(status, doc, "PUT", instance_id)

    async def check_key(self) -> None:
        """One cheap authenticated GET (the account: `/api/v0/users/current/`), so `sleepwatch
        init` can tell a refused key at once. Raises ProviderError, permanent when refused."""
        what = "GET current user"
        status, doc = await self._call("GET", f"{self._api_base}/api/v0/users/current/", what)
        if status >= 300:
            reason = f"Vast refused the key (HTTP {status}): {self._excerpt(doc)}"
            raise ProviderError(reason, status=status, permanent=True)

    def console_url(self, instance_id: str) -> str:
        return CONSOLE_URL  # Vast's console lists every instance on one page

    def _raise_if_refused(self, status: int, doc: Any, verb: str, instance_id: str) -> None:
        if status >= 300:
            reason = f"HTTP {status} on {verb} instance {instance_id}: {self._excerpt(doc)}"
            raise ProviderError(reason, status=status, permanent=True)
        if isinstance(doc, dict) and doc.get("success") is False:
            # Vast sometimes answers 200 with success=false; nothing says it is final.
            reason = f"{verb} instance {instance_id} refused: {self._excerpt(doc)}"
            raise ProviderError(reason, status=status, permanent=False)

    async def _request(
        self, verb: str, instance_id: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """One logical call with bounded retries; returns (status, JSON or text) of the
        first answer that is neither 429 nor 5xx."""
        if id_problem(instance_id) is not None:
            raise ProviderError(f"not a Vast instance id: {instance_id[:40]!r}", permanent=True)
        url = f"{self._api_base}/api/v0/instances/{instance_id}/"
        return await self._call(verb, url, f"{verb} instance {instance_id}", body)

    async def _call(
        self, verb: str, url: str, what: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        for retry in range(self._max_retries + 1):
            status: int | None = None
            retry_after: float | None = None
            try:
                status, doc, retry_after = await self._send(verb, url, body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = self._redact(f"network error on {what}: {type(exc).__name__}: {exc}")
            else:
                if status != 429 and status < 500:
                    return status, doc
                reason = f"HTTP {status} on {what}: {self._excerpt(doc)}"
            if retry == self._max_retries:
                tries = self._max_retries + 1
                reason = f"{reason} (gave up after {tries} tries)"
                raise ProviderError(reason, status=status, retry_after_s=retry_after)
            delay = self._delay(retry, retry_after)
            log.warning("vast: %s; retrying in %.1f s", reason, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, verb: str, url: str, body: dict[str, Any] | None
    ) -> tuple[int, Any, float | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}
        async with self._session.request(
            verb, url, json=body, headers=headers, timeout=self._timeout, allow_redirects=False
        ) as resp:
            text = await resp.text()
            # Seconds only, clamped; an HTTP-date (rare here), nan or garbage: our own backoff.
            retry_after = retry_after_s(resp.headers.get("Retry-After"), RETRY_AFTER_CAP_S)
            return resp.status, _json_or_text(text), retry_after

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after  # already clamped by retry_after_s
        return float(min(self._base_delay_s * 2**retry, self._max_delay_s))

    def _excerpt(self, doc: Any) -> str:
        text = doc if isinstance(doc, str) else json.dumps(doc)
        return self._redact(" ".join(text.split())[:_EXCERPT_CHARS])

    def _redact(self, text: str) -> str:
        """A server that echoes the key back must not put it in our messages."""
        secret = self._api_key.get_secret_value()
        # Too short a "key" (a test's) would mangle ordinary words; real keys are 64 hex.
        return text.replace(secret, "**********") if len(secret) >= 8 else text


def _json_or_text(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # a 100,000-deep nesting is not an answer either
        return text


def open_vast(config: Config, secrets: Secrets, stack: AsyncExitStack) -> VastProvider | str:
    """The Vast adapter from `[vast] api_base` and VAST_API_KEY, closed with the stack."""
    if secrets.vast_api_key is None:
        return "VAST_API_KEY is not set"
    vast = VastProvider(config.vast.api_base, secrets.vast_api_key)
    stack.push_async_callback(vast.close)
    return vast
