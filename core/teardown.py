"""Verified teardown and readiness waits over a `Provider`, plus the messages they lead to.
Called by core/exits.py (teardown) and core/launch.py (readiness), with the run's provider.

Teardown always destroys, never stops: a stopped instance still bills for its storage.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.errors import ProviderError
from core.models import InstanceInfo, InstanceState, MessageKind, OutboundMessage, instance_state
from core.ports import Provider
from core.topics import Action, Topic

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TeardownResult:
    """`destroyed` is True only once a DELETE was sent and then reads showed the instance gone
    `GONE_READS` times in a row. `dph_total` is the price read before destroying (None when
    unknown), for the message."""

    destroyed: bool
    attempts: int
    last_error: str | None
    dph_total: float | None


GONE_READS = 2
"""Reads in a row that must say "gone" after a DELETE: one answer is never enough."""

STOP_BEFORE_DESTROY_S = 15.0
"""How long a teardown waits for the instance's `ctl stop` before it destroys anyway."""


async def stop_best_effort(
    stop: Awaitable[tuple[bool, str]], timeout_s: float = STOP_BEFORE_DESTROY_S
) -> tuple[bool, str]:
    """Run the instance's `ctl stop` before a destroy, bounded and never raising: whatever the
    instance answers (a hang, garbage, a huge or 100,000-deep answer, an error exit, a dropped
    connection), the teardown goes on to the provider's DELETE. A compromised instance must
    not be able to block its own teardown."""
    try:
        return await asyncio.wait_for(stop, timeout_s)
    except TimeoutError:
        return False, f"no answer to ctl stop within {timeout_s:.0f} s"
    except Exception as exc:  # any answer at all must not stop the destroy
        return False, f"ctl stop failed: {type(exc).__name__}"


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
    delete_accepted: bool = False,
    on_delete_accepted: Callable[[], Awaitable[None]] | None = None,
) -> TeardownResult:
    """Destroy the instance and read it back until it is gone.

    The DELETE is always sent, even when a first read says the instance does not exist (a
    DELETE of a gone instance is a harmless 404): only the provider's answer to the DELETE and
    then `GONE_READS` "gone" reads in a row make it destroyed. An unreadable read is neither
    gone nor present; it breaks the row. A failed destroy, or one after which the instance is
    not read gone within `verify_polls` reads, is retried up to `attempts` times with delays
    `base_delay_s * 2**n` capped at `max_delay_s`. A permanent ProviderError (bad key,
    refused) ends the loop early. Never raises ProviderError: the outcome is in the result.

    `delete_accepted`: a DELETE this run already had accepted (a `serve` killed after it): the
    first round only verifies, and a DELETE is sent again only if the instance is not read gone.
    `on_delete_accepted` is awaited as soon as the provider accepts a DELETE, so the caller can
    remember it across a restart.
    """
    dph_total = await _price_before(provider, instance_id)
    last_error: str | None = None
    attempt = 0
    for attempt in range(1, attempts + 1):
        try:
            if not (delete_accepted and attempt == 1):
                await _delete(provider, instance_id, on_delete_accepted)
        except ProviderError as exc:
            last_error = str(exc)
            if exc.permanent:
                break
        else:
            error = await _gone_after_reads(
                provider, instance_id, sleep, verify_polls, verify_interval_s
            )
            if error is None:
                return TeardownResult(True, attempt, last_error, dph_total)
            last_error = error
        if attempt < attempts:
            delay = min(base_delay_s * 2 ** (attempt - 1), max_delay_s)
            await _wait_to_retry(instance_id, last_error, delay, sleep)
    return TeardownResult(False, attempt, last_error, dph_total)


async def _price_before(provider: Provider, instance_id: str) -> float | None:
    """The instance's $/h as read before the destroy (for the cost line), if it can be read."""
    try:
        before = await provider.show(instance_id)
    except ProviderError as exc:
        log.warning("teardown %s: could not read the instance first: %s", instance_id, exc)
        return None
    return before.dph_total if before is not None else None


async def _delete(
    provider: Provider, instance_id: str, accepted: Callable[[], Awaitable[None]] | None
) -> None:
    await provider.destroy(instance_id)
    if accepted is not None:
        await accepted()


async def _wait_to_retry(instance_id: str, why: str | None, delay_s: float, sleep: Sleep) -> None:
    log.warning("teardown %s: %s; retrying in %.0f s", instance_id, why, delay_s)
    await sleep(delay_s)


async def _gone_after_reads(
    provider: Provider, instance_id: str, sleep: Sleep, polls: int, interval_s: float
) -> str | None:
    """None once GONE_READS reads in a row said gone, else why not."""
    in_a_row = 0
    why = f"instance still present after {polls} reads"
    for poll in range(polls):
        if poll:
            await sleep(interval_s)
        try:
            info = await provider.show(instance_id)
        except ProviderError as exc:
            log.warning("teardown %s: verify read failed: %s", instance_id, exc)
            in_a_row, why = 0, f"not read gone after {polls} reads (last: {exc})"
            continue
        if instance_state(info) is InstanceState.GONE:
            in_a_row += 1
            if in_a_row >= GONE_READS:
                return None
        else:
            in_a_row = 0
    return why


async def wait_until_ready(
    provider: Provider,
    instance_id: str,
    *,
    sleep: Sleep = asyncio.sleep,
    timeout_s: float = 600.0,
    poll_s: float = 10.0,
) -> InstanceInfo:
    """Read the instance until it is no longer LOADING, and return that reading (running, or
    e.g. stopped: the caller decides). Bounded by ceil(timeout_s / poll_s) waits. Raises
    ProviderError (permanent) when the instance is gone or lost, and ProviderError on timeout.
    A transient error (an unreadable answer, the API down) is one more wait, not an answer."""
    waits = max(0, math.ceil(timeout_s / poll_s))
    status: str | None = None
    last_error = ""
    for wait in range(waits + 1):
        try:
            info = await provider.show(instance_id)
        except ProviderError as exc:
            if exc.permanent or wait == waits:
                raise
            last_error = f" (last read: {exc})"
            await sleep(poll_s)
            continue
        if info is None:
            raise ProviderError(f"instance {instance_id} does not exist", permanent=True)
        if info.state is InstanceState.LOST:
            reason = f"instance {instance_id} is {info.status or info.state}: it will not come back"
            raise ProviderError(reason, permanent=True)
        status = info.status
        if info.state is not InstanceState.LOADING:
            return info
        if wait < waits:
            await sleep(poll_s)
    shown = status or "not started"
    raise ProviderError(f"instance {instance_id} still {shown} after {timeout_s:.0f} s{last_error}")


def _price(dph_total: float | None) -> str:
    return "an unknown price" if dph_total is None else f"${dph_total:.2f}/h"


def still_billing_message(
    run: str | None,
    instance_id: str,
    dph_total: float | None,
    last_error: str | None,
    *,
    attempts: int | None = None,
    console_url: str | None = None,
) -> OutboundMessage:
    """The alert for a destroy that keeps failing: plain words, the price, what to do.
    `console_url`: the run's provider's console (Provider.console_url)."""
    times = f" {attempts} time{'s' if attempts != 1 else ''}" if attempts is not None else ""
    cause = f" ({last_error})" if last_error else ""
    where = f"at {console_url}" if console_url else "in the provider's console"
    return OutboundMessage(
        kind=MessageKind.ALERT,
        title=f"instance {instance_id} is STILL BILLING at {_price(dph_total)}",
        run=run,
        topic=Topic.STILL_BILLING,
        loud=True,
        actions=(Action.TEARDOWN, Action.STATUS) if run else (),
        reasons=(
            f"destroy failed{times}{cause}",
            f"Destroy it by hand {where} — sleepwatch keeps retrying",
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
        topic=Topic.DESTROYED,
        loud=False,
        reasons=tuple(reasons),
    )


def teardown_message(
    run: str | None, instance_id: str, result: TeardownResult, *, console_url: str | None = None
) -> OutboundMessage:
    """destroyed_message or still_billing_message, as the result says."""
    if result.destroyed:
        return destroyed_message(run, instance_id, result)
    return still_billing_message(
        run,
        instance_id,
        result.dph_total,
        result.last_error,
        attempts=result.attempts,
        console_url=console_url,
    )
