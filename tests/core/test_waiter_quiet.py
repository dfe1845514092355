"""The wait channel's "quiet" wake: once per silence, re-armed by a new status or attempt, or
by the trainer printing again (a later answer shows a newer last_output_at)."""

from __future__ import annotations

import json

from core.waiter import RunWaiter
from tests.conftest import FakeClock
from tests.core.test_races_and_relaunch import ScriptedTransport, record


def answer(reason: str, output_at: str, status: str = "running") -> bytes:
    state = {"status": status, "attempt": 1, "last_output_at": output_at}
    return json.dumps({"reason": reason, "state": state}).encode()


async def run_waiter(answers: list[bytes], clock: FakeClock) -> ScriptedTransport:
    transport = ScriptedTransport(answers)

    async def no_sleep(_: float) -> None:
        return None

    waiter = RunWaiter(
        record("ft", clock, status="running", attempt=1),
        transport,
        python="python3",
        remote_root="/r",
        quiet_s=600,
        timeout_s=300,
        wake=lambda name: None,
        sleep=no_sleep,
    )
    await waiter.run()
    return transport


def quiet_asked(transport: ScriptedTransport) -> list[bool]:
    return ["--quiet" in call for call in transport.calls]


async def test_quiet_is_asked_again_once_the_trainer_has_printed_since(clock: FakeClock) -> None:
    transport = await run_waiter(
        [
            answer("quiet", "2026-11-28T03:00:00Z"),  # silent 10 min: heard
            answer("timeout", "2026-11-28T03:00:00Z"),  # still the same silence: not again
            answer("timeout", "2026-11-28T03:14:00Z"),  # it printed: the next silence is news
            answer("quiet", "2026-11-28T03:14:00Z"),
            answer("changed", "2026-11-28T03:30:00Z", status="done"),
        ],
        clock,
    )
    assert quiet_asked(transport) == [True, False, False, True, False]


async def test_a_broken_channel_wakes_one_check(clock: FakeClock) -> None:
    woken: list[str] = []
    transport = ScriptedTransport([])  # every exec fails: the host is gone

    async def sleep(_: float) -> None:
        if len(transport.calls) >= 4:
            raise RuntimeError("enough")

    waiter = RunWaiter(
        record("ft", clock, status="running", attempt=1),
        transport,
        python="python3",
        remote_root="/r",
        quiet_s=600,
        timeout_s=300,
        wake=woken.append,
        sleep=sleep,
    )
    try:
        await waiter.run()
    except RuntimeError:
        pass
    assert len(transport.calls) == 4 and woken == ["ft"]  # once, not at every retry
