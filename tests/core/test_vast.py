"""VastProvider against the fake Vast API on 127.0.0.1 (real aiohttp client and server)."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import aiohttp
import pytest
from pydantic import SecretStr

from core.config import Config, Secrets
from core.errors import ProviderError
from core.models import InstanceState
from core.ports import Provider
from core.providers import VastProvider
from core.providers.registry import VAST
from core.providers.vast import id_problem, vast_state

if TYPE_CHECKING:
    from tests.fixtures.fake_vast import FakeVast, RecordingSleep

pytest_plugins = ["tests.fixtures.fake_vast"]


@pytest.fixture
def sleep(recording_sleep: RecordingSleep) -> RecordingSleep:
    return recording_sleep


@pytest.fixture
async def vast(fake_vast: FakeVast, sleep: RecordingSleep) -> AsyncIterator[VastProvider]:
    async with VastProvider(
        fake_vast.base_url, SecretStr(fake_vast.api_key), sleep=sleep, max_retries=3
    ) as provider:
        yield provider


def test_it_satisfies_the_provider_port(vast: VastProvider) -> None:
    provider: Provider = vast
    assert provider.name == "vast"


async def test_show_converts_vast_units(fake_vast: FakeVast, vast: VastProvider) -> None:
    fake_vast.add_instance(123, ssh_host="ssh4.example.invalid", ssh_port=41234, label="x")
    info = await vast.show("123")
    assert info is not None
    assert info.id == "123"
    assert (info.state, info.status) == (InstanceState.RUNNING, "running")
    assert (info.ssh_host, info.ssh_port) == ("ssh4.example.invalid", 41234)
    assert info.gpu_ram_mb == 24564
    assert info.cpu_ram_mb == 64000
    assert info.disk_space_gb == 100.0
    assert info.gpu_util_pct == pytest.approx(97.0)
    assert info.dph_total == pytest.approx(0.412)
    assert info.reliability == pytest.approx(0.995)
    assert info.cuda_max_good == pytest.approx(12.4)
    assert (info.gpu_name, info.num_gpus, info.label) == ("RTX 4090", 1, "x")
    assert info.extra["machine_id"] == 4711
    assert fake_vast.requests[0].authorized


async def test_show_reads_a_loading_instance_with_nulls(
    fake_vast: FakeVast, vast: VastProvider
) -> None:
    fake_vast.add_instance(5, actual_status=None, ssh_host=None, ssh_port=None, gpu_util=None)
    info = await vast.show("5")
    assert info is not None
    assert info.state is InstanceState.LOADING and info.status is None
    assert info.ssh_host is None and info.gpu_util_pct is None


@pytest.mark.parametrize("gone_answer", ["404", "null", "empty"])
async def test_show_returns_none_when_the_instance_is_gone(
    fake_vast: FakeVast, vast: VastProvider, gone_answer: str
) -> None:
    fake_vast.gone_answer = gone_answer
    assert await vast.show("999") is None


async def test_destroy_removes_the_instance_and_a_second_destroy_is_quiet(
    fake_vast: FakeVast, vast: VastProvider
) -> None:
    fake_vast.add_instance(7)
    await vast.destroy("7")
    assert "7" not in fake_vast.instances
    assert await vast.show("7") is None
    await vast.destroy("7")  # 404: already gone
    assert [r.method for r in fake_vast.requests] == ["DELETE", "GET", "DELETE"]


async def test_label_puts_the_vast_json(fake_vast: FakeVast, vast: VastProvider) -> None:
    fake_vast.add_instance(8)
    await vast.label("8", "llama-ft")
    assert [r.body for r in fake_vast.calls("PUT")] == [{"label": "llama-ft"}]
    info = await vast.show("8")
    assert info is not None and info.label == "llama-ft"


async def test_label_of_a_missing_instance_is_a_permanent_error(vast: VastProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await vast.label("404", "llama-ft")
    assert caught.value.permanent and caught.value.status == 404


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (None, InstanceState.LOADING),
        ("created", InstanceState.LOADING),
        ("loading", InstanceState.LOADING),
        ("running", InstanceState.RUNNING),
        ("stopped", InstanceState.STOPPED),
        ("exited", InstanceState.LOST),
        ("unknown", InstanceState.LOST),
        ("offline", InstanceState.LOST),
        ("destroyed", InstanceState.GONE),
        ("a-status-from-2030", InstanceState.UNKNOWN),
    ],
)
def test_vast_statuses_map_to_one_provider_neutral_state(
    status: str | None, state: InstanceState
) -> None:
    assert vast_state(status) is state


@pytest.mark.parametrize("instance_id", ["", "12a", "-1", "1234567890123", "12\n", "١٢٣", "../1"])
def test_only_vast_instance_ids_pass_its_check(instance_id: str) -> None:
    assert id_problem(instance_id) is not None
    assert id_problem("4242") is None and id_problem("123456789012") is None
    assert VAST.id_problem is id_problem and VAST.name == "vast"


async def test_a_non_vast_id_is_refused_before_any_request(
    fake_vast: FakeVast, vast: VastProvider
) -> None:
    with pytest.raises(ProviderError, match="not a Vast instance id") as caught:
        await vast.show("12\n")
    assert caught.value.permanent and fake_vast.requests == []


async def test_it_opens_only_with_an_api_key(fake_vast: FakeVast) -> None:
    config = Config.model_validate({"vast": {"api_base": fake_vast.base_url}})
    async with AsyncExitStack() as stack:
        without = Secrets.model_validate({"VAST_API_KEY": None})
        assert VAST.open(config, without, stack) == "VAST_API_KEY is not set"
        keyed = Secrets.model_validate({"VAST_API_KEY": fake_vast.api_key})
        opened = VAST.open(config, keyed, stack)
        assert isinstance(opened, VastProvider)
        assert await opened.show("4242") is None  # it talks to [vast] api_base, with the key
        assert fake_vast.requests[0].authorized


def test_the_console_is_vasts(vast: VastProvider) -> None:
    assert vast.console_url("4242") == "https://cloud.vast.ai/instances/"


async def test_it_backs_off_on_429_and_5xx_honouring_retry_after(
    fake_vast: FakeVast, vast: VastProvider, sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(9)
    fake_vast.script((429, "API requests too frequent", {"Retry-After": "7"}), (500, {}), (502, ""))
    info = await vast.show("9")
    assert info is not None
    assert sleep.delays == [7.0, 4.0, 8.0]
    assert len(fake_vast.requests) == 4


async def test_it_gives_up_after_bounded_retries_with_a_transient_error(
    fake_vast: FakeVast, vast: VastProvider, sleep: RecordingSleep
) -> None:
    fake_vast.add_instance(10)
    fake_vast.script(*[(503, {"error": "busy"})] * 10)
    with pytest.raises(ProviderError) as caught:
        await vast.show("10")
    assert caught.value.status == 503 and not caught.value.permanent
    assert len(fake_vast.requests) == 4  # 1 try + max_retries=3
    assert sleep.delays == [2.0, 4.0, 8.0]


async def test_backoff_is_capped(fake_vast: FakeVast, sleep: RecordingSleep) -> None:
    fake_vast.script(*[(500, {})] * 10, (429, {}, {"Retry-After": "99999"}))
    provider = VastProvider(
        fake_vast.base_url, SecretStr(fake_vast.api_key), sleep=sleep, max_retries=11,
        max_delay_s=20.0,
    )  # fmt: skip
    async with provider:
        await provider.show("1")
    assert sleep.delays[:6] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert sleep.delays[-1] == 300.0  # RETRY_AFTER_CAP_S


@pytest.mark.parametrize(
    ("retry_after", "slept"),
    [
        ("nan", 2.0),
        ("NaN", 2.0),
        ("inf", 2.0),
        ("-5", 0.0),
        ("1e300", 300.0),
        ("99999999999999999999999", 300.0),
        ("soon", 2.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 2.0),
    ],
)
async def test_an_odd_retry_after_is_clamped_never_a_sleep_of_nan(
    fake_vast: FakeVast, vast: VastProvider, sleep: RecordingSleep, retry_after: str, slept: float
) -> None:
    fake_vast.add_instance(11)
    fake_vast.script((429, {}, {"Retry-After": retry_after}))
    assert await vast.show("11") is not None
    assert sleep.delays == [slept]  # not a number: the client's own backoff (2 s first)


async def test_other_4xx_are_permanent_and_not_retried(
    fake_vast: FakeVast, vast: VastProvider, sleep: RecordingSleep
) -> None:
    fake_vast.script((403, {"error": "forbidden"}))
    with pytest.raises(ProviderError) as caught:
        await vast.destroy("11")
    assert caught.value.permanent and caught.value.status == 403
    assert sleep.delays == []


async def test_a_network_error_becomes_a_provider_error(sleep: RecordingSleep) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = VastProvider(
        f"http://127.0.0.1:{port}", SecretStr("dead-key-0123"), sleep=sleep, max_retries=1
    )
    async with dead:
        with pytest.raises(ProviderError) as caught:
            await dead.show("1")
    assert "network error" in str(caught.value) and not caught.value.permanent


async def test_an_id_that_is_not_a_number_is_refused_before_any_request(
    fake_vast: FakeVast, vast: VastProvider
) -> None:
    with pytest.raises(ProviderError):
        await vast.destroy("../../users/current")
    assert fake_vast.requests == []


async def test_the_key_never_shows_in_errors_logs_or_repr(
    fake_vast: FakeVast, sleep: RecordingSleep, caplog: pytest.LogCaptureFixture
) -> None:
    key = fake_vast.api_key
    # A server that echoes the key in its error body must not get it into our messages.
    fake_vast.script((500, {"error": f"bad key {key}"}), (401, {"error": f"bad key {key}"}))
    caplog.set_level(logging.DEBUG)
    provider = VastProvider(fake_vast.base_url, SecretStr(key), sleep=sleep, max_retries=2)
    async with provider:
        with pytest.raises(ProviderError) as caught:
            await provider.show("1")
        wrong = VastProvider(fake_vast.base_url, SecretStr("wrong-key"), sleep=sleep)
        async with wrong:
            with pytest.raises(ProviderError) as refused:
                await wrong.destroy("1")
    assert refused.value.status == 401 and refused.value.permanent
    assert caught.value.status == 401
    for text in (str(caught.value), repr(caught.value), repr(provider), str(provider), caplog.text):
        assert key not in text
    assert "wrong-key" not in repr(wrong) + str(refused.value)
    assert "**********" in repr(provider)


async def test_a_caller_session_is_used_and_left_open(fake_vast: FakeVast) -> None:
    fake_vast.add_instance(12)
    async with aiohttp.ClientSession() as session:
        provider = VastProvider(fake_vast.base_url, SecretStr(fake_vast.api_key), session=session)
        assert await provider.show("12") is not None
        await provider.close()
        assert not session.closed
