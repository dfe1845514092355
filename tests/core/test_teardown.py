"""Verified teardown and readiness: the real VastProvider against the fake Vast API, and the
in-memory providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from core.errors import ProviderError
from core.models import InstanceInfo, InstanceState, MessageKind
from core.providers import NoneProvider, RecordingProvider, VastProvider
from core.teardown import (
    TeardownResult,
    destroy_verified,
    destroyed_message,
    still_billing_message,
    teardown_message,
    wait_until_ready,
)
from tests.fixtures.fake_vast import RecordingSleep

if TYPE_CHECKING:
    from tests.fixtures.fake_vast import FakeVast

pytest_plugins = ["tests.fixtures.fake_vast"]


@pytest.fixture
async def vast(fake_vast: FakeVast, recording_sleep: RecordingSleep) -> AsyncIterator[VastProvider]:
    key = SecretStr(fake_vast.api_key)
    async with VastProvider(fake_vast.base_url, key, sleep=recording_sleep) as provider:
        yield provider


async def test_teardown_destroys_and_verifies_the_instance_is_gone(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(123, dph_total=1.25)
    result = await destroy_verified(vast, "123", sleep=recording_sleep)
    assert result == TeardownResult(destroyed=True, attempts=1, last_error=None, dph_total=1.25)
    # read, destroy, then "gone" read twice in a row
    assert [r.method for r in fake_vast.requests] == ["GET", "DELETE", "GET", "GET"]
    assert fake_vast.calls("PUT") == []  # never just a stop
    assert recording_sleep.delays == [3.0]


async def test_teardown_keeps_reading_until_the_instance_is_gone(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(124)
    fake_vast.linger_reads = 2
    result = await destroy_verified(vast, "124", sleep=recording_sleep, verify_interval_s=3.0)
    assert result.destroyed and result.attempts == 1
    # before, then 2 lingering reads and the gone one twice
    assert len(fake_vast.calls("GET")) == 5
    assert recording_sleep.delays == [3.0, 3.0, 3.0]


async def test_teardown_survives_a_429_and_two_500s(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(125, dph_total=0.8)
    fake_vast.script(
        (429, {"msg": "API requests too frequent"}, {"Retry-After": "0"}),
        (500, {"error": "internal"}),
        (500, {"error": "internal"}),
        method="DELETE",
    )
    result = await destroy_verified(vast, "125", sleep=recording_sleep)
    assert result.destroyed and result.dph_total == 0.8
    assert "125" not in fake_vast.instances
    assert len(fake_vast.calls("DELETE")) == 4
    # Retry-After: 0 honoured, then the provider's own backoff, growing; teardown never
    # needed a second destroy.
    assert recording_sleep.delays == [0.0, 4.0, 8.0, 3.0]  # 3.0: between the two gone reads


async def test_a_destroy_that_never_succeeds_says_the_instance_is_still_billing(
    fake_vast: FakeVast, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(126, dph_total=1.25)
    fake_vast.destroy_never_succeeds = True
    key = SecretStr(fake_vast.api_key)
    async with VastProvider(
        fake_vast.base_url, key, sleep=recording_sleep, max_retries=1
    ) as provider:
        result = await destroy_verified(provider, "126", sleep=recording_sleep, attempts=6)
    assert not result.destroyed and result.attempts == 6 and result.dph_total == 1.25
    assert result.last_error is not None and "HTTP 500" in result.last_error
    teardown_delays = [d for d in recording_sleep.delays if d >= 5.0]
    assert teardown_delays == [5.0, 10.0, 20.0, 40.0, 80.0]
    message = teardown_message("llama-ft", "126", result, console_url=provider.console_url("126"))
    assert message.kind is MessageKind.ALERT and message.run == "llama-ft"
    assert message.title == "instance 126 is STILL BILLING at $1.25/h"
    assert "destroy failed 6 times" in message.reasons[0] and "HTTP 500" in message.reasons[0]
    assert "https://cloud.vast.ai/instances/" in message.reasons[1]
    assert "keeps retrying" in message.reasons[1]


async def test_a_permanent_refusal_stops_retrying(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(127)
    fake_vast.script((403, {"error": "forbidden"}), method="DELETE")
    result = await destroy_verified(vast, "127", sleep=recording_sleep)
    assert not result.destroyed and result.attempts == 1
    assert result.last_error is not None and "HTTP 403" in result.last_error


async def test_an_instance_read_gone_first_still_gets_its_delete_and_two_gone_reads(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    result = await destroy_verified(vast, "128", sleep=recording_sleep)
    assert result.destroyed and result.attempts == 1
    assert [r.method for r in fake_vast.requests] == ["GET", "DELETE", "GET", "GET"]


@pytest.mark.parametrize(
    "body",
    ["<html>502 Bad Gateway</html>", "{}", '{"instances": {"id": 129, "actual_st', ""],
    ids=["html", "empty-object", "truncated", "no-body"],
)
async def test_an_unreadable_answer_is_a_transient_error_never_gone(
    fake_vast: FakeVast, vast: VastProvider, body: str
) -> None:
    fake_vast.add_instance(129)
    fake_vast.script((200, body), method="GET")
    with pytest.raises(ProviderError, match="unreadable answer") as caught:
        await vast.show("129")
    assert not caught.value.permanent
    assert (await vast.show("129")) is not None


@pytest.mark.parametrize("gone", ["404", "null", "empty"])
async def test_only_a_404_or_an_explicit_empty_answer_is_gone(
    fake_vast: FakeVast, vast: VastProvider, gone: str
) -> None:
    fake_vast.gone_answer = gone
    assert await vast.show("133") is None


async def test_an_unreadable_read_between_two_gone_ones_is_not_two_in_a_row(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(134)
    fake_vast.script((200, {}), (404, {}), (200, "<html/>"), (404, {}), method="GET")
    result = await destroy_verified(vast, "134", sleep=recording_sleep)
    assert result.destroyed
    assert len(fake_vast.calls("GET")) == 5  # before (unreadable), gone, unreadable, gone, gone


async def test_teardown_retries_when_the_instance_stays_after_destroy(
    recording_sleep: RecordingSleep,
) -> None:
    stubborn = RecordingProvider([InstanceInfo(id="9", state=InstanceState.RUNNING, dph_total=2.0)])

    async def destroy_that_does_nothing(instance_id: str) -> None:
        stubborn.requests.append(("destroy", instance_id, None))

    stubborn.destroy = destroy_that_does_nothing  # type: ignore[method-assign]
    result = await destroy_verified(
        stubborn, "9", sleep=recording_sleep, attempts=2, verify_polls=3
    )
    assert not result.destroyed and result.attempts == 2
    assert result.last_error == "instance still present after 3 reads"
    assert len(stubborn.calls("destroy")) == 2


async def test_wait_until_ready_waits_while_loading(recording_sleep: RecordingSleep) -> None:
    provider = RecordingProvider([InstanceInfo(id="1", state=InstanceState.LOADING)])
    reads = 0
    original_show = provider.show

    async def show_that_boots(instance_id: str) -> InstanceInfo | None:
        nonlocal reads
        reads += 1
        state = InstanceState.RUNNING if reads > 2 else InstanceState.LOADING
        provider.set_state("1", state, {2: "loading"}.get(reads))
        return await original_show(instance_id)

    provider.show = show_that_boots  # type: ignore[method-assign]
    info = await wait_until_ready(provider, "1", sleep=recording_sleep, poll_s=10)
    assert info.state is InstanceState.RUNNING
    assert recording_sleep.delays == [10, 10]


async def test_wait_until_ready_is_bounded(recording_sleep: RecordingSleep) -> None:
    loading = InstanceInfo(id="1", state=InstanceState.LOADING, status="loading")
    provider = RecordingProvider([loading])
    with pytest.raises(ProviderError, match="still loading after 60 s"):
        await wait_until_ready(provider, "1", sleep=recording_sleep, timeout_s=60, poll_s=10)
    assert recording_sleep.delays == [10] * 6


async def test_wait_until_ready_refuses_a_lost_instance(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(130)
    fake_vast.go_offline(130)
    with pytest.raises(ProviderError, match="offline") as caught:
        await wait_until_ready(vast, "130", sleep=recording_sleep)
    assert caught.value.permanent
    with pytest.raises(ProviderError, match="does not exist"):
        await wait_until_ready(vast, "131", sleep=recording_sleep)


async def test_wait_until_ready_reads_an_unreadable_answer_as_one_more_wait(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(135)
    fake_vast.script((200, "<html>502</html>"), (200, {}), method="GET")
    info = await wait_until_ready(vast, "135", sleep=recording_sleep, poll_s=10)
    assert info.state is InstanceState.RUNNING and info.status == "running"
    assert recording_sleep.delays == [10, 10]


async def test_launch_reads_ssh_from_the_instance_once_it_runs(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(132, ssh_host="ssh5.example.invalid", ssh_port=40022)
    info = await wait_until_ready(vast, "132", sleep=recording_sleep)
    assert (info.ssh_host, info.ssh_port) == ("ssh5.example.invalid", 40022)


def test_messages_say_the_price_in_plain_words() -> None:
    unknown = still_billing_message(None, "5", None, None)
    assert unknown.title == "instance 5 is STILL BILLING at an unknown price"
    assert unknown.reasons[0] == "destroy failed"
    done = destroyed_message("r", "5", TeardownResult(True, 2, "HTTP 500", 0.5))
    assert done.kind is MessageKind.INFO and done.title == "instance 5 destroyed"
    assert done.reasons == ("destroy verified after 2 attempts: the instance no longer exists",
                            "it was billing $0.50/h")  # fmt: skip


async def test_the_recording_provider_records_and_scripts_failures() -> None:
    provider = RecordingProvider([InstanceInfo(id="1", state=InstanceState.RUNNING)], name="vast")
    provider.fail("destroy", ProviderError("boom", status=500))
    with pytest.raises(ProviderError):
        await provider.destroy("1")
    await provider.label("1", "run-a")
    await provider.destroy("1")
    assert await provider.show("1") is None
    assert provider.requests == [
        ("destroy", "1", None),
        ("label", "1", "run-a"),
        ("destroy", "1", None),
        ("show", "1", None),
    ]


async def test_the_none_provider_shows_nothing_and_only_records() -> None:
    provider = NoneProvider()
    assert provider.name == "none"
    assert await provider.show("local") is None
    await provider.destroy("local")
    await provider.label("local", "demo")
    assert [r[0] for r in provider.requests] == ["show", "destroy", "label"]
    result = await destroy_verified(provider, "local", sleep=RecordingSleep())
    assert result.destroyed and result.attempts == 1  # the DELETE is always sent


async def test_a_delete_accepted_before_a_restart_is_verified_not_sent_again(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    # The first serve's DELETE was accepted and the instance is gone; the restarted one only
    # reads it back (twice), it does not send a second DELETE.
    remembered: list[str] = []

    async def remember() -> None:
        remembered.append("accepted")

    result = await destroy_verified(
        vast, "140", sleep=recording_sleep, delete_accepted=True, on_delete_accepted=remember
    )
    assert result.destroyed and result.attempts == 1
    assert fake_vast.calls("DELETE") == [] and remembered == []
    assert len(fake_vast.calls("GET")) == 3  # before, then gone twice


async def test_a_remembered_delete_whose_instance_is_still_there_is_sent_again(
    fake_vast: FakeVast, vast: VastProvider, recording_sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(141)
    remembered: list[str] = []

    async def remember() -> None:
        remembered.append("accepted")

    result = await destroy_verified(
        vast,
        "141",
        sleep=recording_sleep,
        delete_accepted=True,
        on_delete_accepted=remember,
        verify_polls=2,
    )
    assert result.destroyed and result.attempts == 2
    assert len(fake_vast.calls("DELETE")) == 1 and remembered == ["accepted"]
