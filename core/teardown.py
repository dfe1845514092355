"""Verified teardown and readiness waits over a `Provider`, plus the messages they lead to.

Teardown always destroys, never stops: a stopped Vast instance still bills for its storage.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.errors import ProviderError
from core.models import InstanceInfo, MessageKind, OutboundMessage
from core.ports import Provider

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

VAST_CONSOLE_URL = "https://cloud.vast.ai/instances/"
GONE_STATES = frozenset({"destroyed", "deleted"})
WAITING_STATES = frozenset({None, "loading"})


@dataclass(frozen=True, slots=True)
class TeardownResult:
    """`destroyed` is True only once a read showed the instance gone. `dph_total` is the
    price read before destroying (None when unknown), for the message."""

    destroyed: bool
    attempts: int
    last_error: str | None
    dph_total: float | None


async def destroy_verified(
    provider: Provider,
    instance_id: str,
    *,
    sleep: Sleep = asyncio.sleep,
    attempts: int = 6,
    base_delay_s: float = 5.0,
    max_delay_s: float = 300.0,
    verify_polls: int = 10,
    verify_interval_s: float = 3.0,
) -> TeardownResult:
    """Destroy the instance and read it back until it is gone.

    A failed destroy, or one after which the instance is still there after `verify_polls`
    reads, is retried up to `attempts` times with delays `base_delay_s * 2**n` capped at
    `max_delay_s`. A permanent ProviderError (bad key, refused) ends the loop early.
    Never raises ProviderError: the outcome is in the result.
    """
    dph_total: float | None = None
    try:
        before = await provider.show(instance_id)
    except ProviderError as exc:
        log.warning("teardown %s: could not read the instance first: %s", instance_id, exc)
    else:
        if before is None:
            return TeardownResult(destroyed=True, attempts=0, last_error=None, dph_total=None)
        dph_total = before.dph_total
    last_error: str | None = None
    attempt = 0
    for attempt in range(1, attempts + 1):
        try:
            await provider.destroy(instance_id)
        except ProviderError as exc:
            last_error = str(exc)
            if exc.permanent:
                break
        else:
            if await _gone_after_reads(
                provider, instance_id, sleep, verify_polls, verify_interval_s
            ):
                return TeardownResult(True, attempt, last_error, dph_total)
            last_error = f"instance still present after {verify_polls} reads"
        if attempt < attempts:
            delay = min(base_delay_s * 2 ** (attempt - 1), max_delay_s)
            log.warning("teardown %s: %s; retrying in %.0f s", instance_id, last_error, delay)
            await sleep(delay)
    return TeardownResult(False, attempt, last_error, dph_total)


async def _gone_after_reads(
    provider: Provider, instance_id: str, sleep: Sleep, polls: int, interval_s: float
) -> bool:
    for poll in range(polls):
        if poll:
            await sleep(interval_s)
        try:
            info = await provider.show(instance_id)
        except ProviderError as exc:
            log.warning("teardown %s: verify read failed: %s", instance_id, exc)
            continue
        if info is None or info.actual_status in GONE_STATES:
            return True
    return False


async def wait_until_ready(
    provider: Provider,
    instance_id: str,
    *,
    sleep: Sleep = asyncio.sleep,
    timeout_s: float = 600.0,
    poll_s: float = 10.0,
) -> InstanceInfo:
    """Read the instance until its `actual_status` is neither null nor "loading", and return
    that reading (running, or e.g. "stopped": the caller decides). Bounded by
    ceil(timeout_s / poll_s) waits. Raises ProviderError (permanent) when the instance is
    gone or lost (exited/unknown/offline), and ProviderError on timeout."""
    waits = max(0, math.ceil(timeout_s / poll_s))
    status: str | None = None
    for wait in range(waits + 1):
        info = await provider.show(instance_id)
        if info is None:
            raise ProviderError(f"instance {instance_id} does not exist", permanent=True)
        if info.lost:
            reason = f"instance {instance_id} is {info.actual_status}: it will not come back"
            raise ProviderError(reason, permanent=True)
        status = info.actual_status
        if status not in WAITING_STATES:
            return info
        if wait < waits:
            await sleep(poll_s)
    shown = status or "not started"
    raise ProviderError(f"instance {instance_id} still {shown} after {timeout_s:.0f} s")


def _price(dph_total: float | None) -> str:
    return "an unknown price" if dph_total is None else f"${dph_total:.2f}/h"


def still_billing_message(
    run: str | None,
    instance_id: str,
    dph_total: float | None,
    last_error: str | None,
    *,
    attempts: int | None = None,
) -> OutboundMessage:
    """The alert for a destroy that keeps failing: plain words, the price, what to do."""
    times = f" {attempts} time{'s' if attempts != 1 else ''}" if attempts is not None else ""
    cause = f" ({last_error})" if last_error else ""
    return OutboundMessage(
        kind=MessageKind.ALERT,
        title=f"instance {instance_id} is STILL BILLING at {_price(dph_total)}",
        run=run,
        reasons=(
            f"destroy failed{times}{cause}",
            f"Destroy it by hand at {VAST_CONSOLE_URL} — sleepwatch keeps retrying",
        ),
    )


def destroyed_message(run: str | None, instance_id: str, result: TeardownResult) -> OutboundMessage:
    """The confirmation once a read showed the instance gone."""
    tries = "" if result.attempts <= 1 else f" after {result.attempts} attempts"
    reasons = [f"destroy verified{tries}: the instance no longer exists"]
    if result.dph_total is not None:
        reasons.append(f"it was billing {_price(result.dph_total)}")
    return OutboundMessage(
        kind=MessageKind.INFO,
        title=f"instance {instance_id} destroyed",
        run=run,
        reasons=tuple(reasons),
    )


def teardown_message(run: str | None, instance_id: str, result: TeardownResult) -> OutboundMessage:
    """destroyed_message or still_billing_message, as the result says."""
    if result.destroyed:
        return destroyed_message(run, instance_id, result)
    return still_billing_message(
        run, instance_id, result.dph_total, result.last_error, attempts=result.attempts
    )
