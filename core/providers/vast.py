"""Vast.ai instance API (show, destroy, label) over aiohttp: `core.ports.Provider` for runs
whose `provider` is "vast". Built by the composition root (core/runtime.py) when VAST_API_KEY is
set; the watcher, exits and launch reach it through `provider_for(run)`. Vast's statuses, its
instance ids and its console live here and nowhere else.

A small client rather than the `vastai` package: its `VastAI` class is synchronous (requests,
built around the CLI), and its only async client is the serverless one, which also puts the
key in the query string. Here the key travels only in the Authorization header, never in a
URL, a log line, an exception or a repr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from core.errors import ProviderError
from core.models import InstanceInfo, InstanceState
from core.retry_after import retry_after_s

if TYPE_CHECKING:
    from core.config import Config, Secrets

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

RETRY_AFTER_CAP_S = 300.0
"""A Retry-After above this is cut to it, so one answer cannot park a teardown for hours."""

_EXCERPT_CHARS = 200
_INSTANCE_ID = re.compile(r"[0-9]{1,12}")
CONSOLE_URL = "https://cloud.vast.ai/instances/"

# Vast's actual_status values. "unknown" there means the host stopped reporting: lost.
_STATES: dict[str | None, InstanceState] = {
    None: InstanceState.LOADING,
    "created": InstanceState.LOADING,
    "loading": InstanceState.LOADING,
    "scheduling": InstanceState.LOADING,
    "running": InstanceState.RUNNING,
    "stopped": InstanceState.STOPPED,
    "exited": InstanceState.LOST,
    "unknown": InstanceState.LOST,
    "offline": InstanceState.LOST,
    "destroyed": InstanceState.GONE,
    "deleted": InstanceState.GONE,
}


def vast_state(actual_status: str | None) -> InstanceState:
    """Vast's `actual_status` in provider-neutral terms; a status this version does not know
    is UNKNOWN (shown, never acted on)."""
    return _STATES.get(actual_status, InstanceState.UNKNOWN)


def id_problem(instance_id: str) -> str | None:
    """Why this is not a Vast instance id (Vast's ids are decimal numbers), or None."""
    if _INSTANCE_ID.fullmatch(instance_id):
        return None
    return "a Vast instance id is a number of 1 to 12 digits"


class VastInstance(BaseModel):
    """The fields sleepwatch reads from Vast's instance JSON (units as Vast gives them)."""

    model_config = ConfigDict(extra="ignore")

    actual_status: str | None = None
    intended_status: str | None = None
    cur_state: str | None = None
    status_msg: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    dph_total: float | None = None  # $/h
    gpu_name: str | None = None
    num_gpus: int | None = None
    gpu_ram: float | None = None  # MB, per GPU
    cpu_ram: float | None = None  # MB
    disk_space: float | None = None  # GB
    reliability2: float | None = None
    cuda_max_good: float | None = None
    gpu_util: float | None = None  # fraction 0..1
    label: str | None = None
    machine_id: int | None = None
    public_ipaddr: str | None = None

    def to_info(self, instance_id: str) -> InstanceInfo:
        extra = {
            k: v
            for k, v in (
                ("intended_status", self.intended_status),
                ("cur_state", self.cur_state),
                ("status_msg", self.status_msg),
                ("machine_id", self.machine_id),
                ("public_ipaddr", self.public_ipaddr),
            )
            if v is not None
        }
        return InstanceInfo(
            id=instance_id,
            state=vast_state(self.actual_status),
            status=self.actual_status,
            ssh_host=self.ssh_host,
            ssh_port=self.ssh_port,
            dph_total=self.dph_total,
            gpu_name=self.gpu_name,
            num_gpus=self.num_gpus if self.num_gpus is not None else 1,
            gpu_ram_mb=self.gpu_ram,
            cpu_ram_mb=self.cpu_ram,
            disk_space_gb=self.disk_space,
            reliability=self.reliability2,
            cuda_max_good=self.cuda_max_good,
            gpu_util_pct=None if self.gpu_util is None else 100.0 * self.gpu_util,
            label=self.label,
            extra=extra,
        )


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
        what = f"{verb} instance {instance_id}"
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
