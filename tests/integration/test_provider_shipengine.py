"""
ShipEngineProvider against the real sandbox over loopback HTTP: every outcome maps to its error class.
"""

from __future__ import annotations

import re
import socket
import traceback
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC

import anyio
import pytest

import shiptrackd
from shiptrackd.config import ProviderConfig, Secret
from shiptrackd.errors import (
    InvalidResponseError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachableError,
    RateLimitedError,
    ShipmentNotFoundError,
    TransientProviderError,
)
from shiptrackd.providers import ShipEngineProvider
from shiptrackd.providers.base import Quota
from shiptrackd.sandbox import Sandbox

KEY = "TEST_k3y_that_must_never_leak"
Call = tuple[int | None, float, str | None]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(api_key=KEY, time_scale=0).serve() as sb:
        yield sb


@pytest.fixture
def config(sandbox: Sandbox) -> ProviderConfig:
    return ProviderConfig(api_key=Secret(KEY), base_url=sandbox.base_url, timeout_s=0.5, concurrency=4)


@pytest.fixture
async def calls() -> list[Call]:
    return []


@pytest.fixture
async def provider(config: ProviderConfig, calls: list[Call]) -> AsyncIterator[ShipEngineProvider]:
    provider = ShipEngineProvider(config, observer=lambda *call: calls.append(call))
    yield provider
    await provider.aclose()


@pytest.mark.anyio
async def test_fetch_parses_a_tracking_body(provider: ShipEngineProvider, sandbox: Sandbox) -> None:
    """A 200 becomes a TrackingInfo with aware UTC dates and events oldest first, following simulated time."""
    info = await provider.fetch("ups", "1ZLCNORMAL0001")
    assert info.status_code == "NY" and len(info.events) == 1
    sandbox.advance(days=5)
    info = await provider.fetch("ups", "1ZLCNORMAL0001")
    assert info.status_code == "DE" and info.status_description == "Delivered"
    assert info.tracking_number == "1ZLCNORMAL0001" and info.carrier_code == "ups"
    times = [event.occurred_at for event in info.events]
    assert times == sorted(times) and len(times) == 8
    assert all(t.tzinfo is UTC for t in times) and info.actual_delivery_at and info.actual_delivery_at.tzinfo is UTC
    assert info.events[0].status_code == "" and info.events[-1].status_code == "DE"


@pytest.mark.anyio
async def test_requests_identify_shiptrackd(provider: ShipEngineProvider, sandbox: Sandbox) -> None:
    """Every request carries the shiptrackd User-Agent with the package version (and the key, or it'd be 401)."""
    await provider.fetch("ups", "1Z1")
    await provider.check_connectivity()
    expected = f"shiptrackd/{shiptrackd.__version__} (+https://github.com/shiptrackd)"
    assert sandbox.stats.user_agents == {expected: 2} and sandbox.stats.by_status == {200: 2}


@pytest.mark.anyio
async def test_stamps_com_is_answered_as_usps(provider: ShipEngineProvider) -> None:
    """The body's carrier_code wins over the query's, as ShipEngine answers stamps_com with usps."""
    info = await provider.fetch("stamps_com", "9400EXCEPTION1")
    assert (info.carrier_code, info.status_code) == ("usps", "EX") and info.exception_description


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("number", "error", "kind", "status"),
    [
        ("1ZNOTFOUND1", ShipmentNotFoundError, "not_found", 404),
        ("1ZUNSUPPORTED1", ShipmentNotFoundError, "not_found", 400),
        ("1ZREJECTED1", PermanentProviderError, "rejected", 400),
        ("1ZFORBIDDEN1", ProviderAuthError, "unauthorized", 403),
        ("1ZFAIL5001", TransientProviderError, "transient", 500),
        ("1ZODD5001", TransientProviderError, "transient", 500),
        ("1ZFAIL5031", TransientProviderError, "transient", 503),
        ("1ZRESET1", TransientProviderError, "transient", None),
        ("1ZHANG1", TransientProviderError, "transient", None),
        ("1ZSLOW1", TransientProviderError, "transient", None),
    ],
)
async def test_faults_map_to_error_classes(
    provider: ShipEngineProvider, number: str, error: type[ProviderError], kind: str, status: int | None
) -> None:
    """Each sandbox fault surfaces as the error class, kind and status the sync engine acts on."""
    with pytest.raises(error) as caught:
        await provider.fetch("ups", number)
    assert type(caught.value) is error
    assert (caught.value.kind, caught.value.status) == (kind, status)


@pytest.mark.anyio
async def test_error_messages_use_the_error_body(provider: ShipEngineProvider) -> None:
    """Error messages quote errors[0].message, or the singular error.message variant, plus the request id."""
    with pytest.raises(PermanentProviderError, match="tracking_number is not valid for carrier ups"):
        await provider.fetch("ups", "1ZREJECTED2")
    with pytest.raises(TransientProviderError, match=r"Internal Server Error \[request_id [0-9a-f-]{36}\]"):
        await provider.fetch("ups", "1ZODD5002")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("number", "field"),
    [("1ZBADJSON1", "body"), ("1ZBADSCHEMA1", "status_code"), ("1ZBADEVENTS1", "events"),
     ("1ZBADDATE1", "events[0].occurred_at")],
)  # fmt: skip
async def test_malformed_bodies_name_the_field(provider: ShipEngineProvider, number: str, field: str) -> None:
    """A 200 that breaks the schema is an InvalidResponseError naming the offending field."""
    with pytest.raises(InvalidResponseError, match=rf"\): {re.escape(field)}: ") as caught:
        await provider.fetch("ups", number)
    assert caught.value.status == 200


@pytest.mark.anyio
async def test_flaky_recovers_on_the_third_call(provider: ShipEngineProvider) -> None:
    """FLAKY answers 503 twice and then a real tracking body."""
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            await provider.fetch("fedex", "7FLAKY01")
    assert (await provider.fetch("fedex", "7FLAKY01")).status_code in ("NY", "UN")


@pytest.mark.anyio
async def test_bad_key_is_an_auth_error(config: ProviderConfig) -> None:
    """A wrong API-Key is a 401 ProviderAuthError, for fetches and for the connectivity check."""
    provider = ShipEngineProvider(replace(config, api_key=Secret("TEST_wrong")))
    try:
        with pytest.raises(ProviderAuthError) as caught:
            await provider.fetch("ups", "1Z1")
        assert caught.value.status == 401 and "API key is invalid" in caught.value.message
        with pytest.raises(ProviderAuthError):
            await provider.check_connectivity()
    finally:
        await provider.aclose()


@pytest.mark.anyio
async def test_429_carries_retry_after_from_the_header(config: ProviderConfig, sandbox: Sandbox) -> None:
    """A 429 becomes RateLimitedError with the header's Retry-After, clamped to max_retry_after_s."""
    provider = ShipEngineProvider(config)
    clamped = ShipEngineProvider(replace(config, max_retry_after_s=1.5))
    try:
        with pytest.raises(RateLimitedError) as caught:
            await provider.fetch("ups", "1ZRATELIMIT1")
        assert (caught.value.retry_after_s, caught.value.status, caught.value.kind) == (2.0, 429, "rate_limited")
        with pytest.raises(RateLimitedError) as caught:
            await clamped.fetch("ups", "1ZRATELIMIT1")
        assert caught.value.retry_after_s == 1.5
        sandbox.configure(rate_limit="1/min")  # now the real token bucket: one request, then 429
        await provider.fetch("ups", "1Z1")
        with pytest.raises(RateLimitedError) as caught:
            await provider.fetch("ups", "1Z1")
        assert 1.0 <= caught.value.retry_after_s <= 60.0
    finally:
        await provider.aclose()
        await clamped.aclose()


@pytest.mark.anyio
async def test_x_ratelimit_headers_reach_the_quota_observer(provider: ShipEngineProvider, sandbox: Sandbox) -> None:
    """Where the API sends X-RateLimit-*, each answer's quota reaches the observer, a 429 included; else nothing."""
    seen: list[Quota] = []
    provider.quota_observer = seen.append
    sandbox.configure(rate_limit="2/min")  # ShipEngine's way: no quota headers
    await provider.fetch("ups", "1Z1")
    assert seen == []
    sandbox.configure(rate_limit="2/min", quota_headers=True)  # a fresh bucket of 2 that says what is left
    await provider.fetch("ups", "1Z1")
    await provider.fetch("ups", "1Z1")
    with pytest.raises(RateLimitedError):
        await provider.fetch("ups", "1Z1")
    assert [(q.limit, q.remaining) for q in seen] == [(2, 1), (2, 0), (2, 0)]
    assert all(q.reset_s is not None and 0 < q.reset_s <= 60 for q in seen)


@pytest.mark.anyio
async def test_unreachable_port_is_unreachable_error() -> None:
    """Nothing listening is ProviderUnreachableError, for fetches and the connectivity check."""
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = ShipEngineProvider(ProviderConfig(api_key=Secret(KEY), base_url=f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(ProviderUnreachableError) as caught:
            await provider.fetch("ups", "1Z1")
        assert caught.value.kind == "unreachable" and caught.value.status is None
        with pytest.raises(ProviderUnreachableError):
            await provider.check_connectivity()
    finally:
        await provider.aclose()


@pytest.mark.anyio
async def test_api_key_never_appears_in_errors_or_repr(provider: ShipEngineProvider) -> None:
    """No error text, traceback or repr contains the API key, even when the server echoes it back."""
    texts = [repr(provider), str(provider)]
    for number in ("1ZLEAKKEY1", "1ZNOTFOUND", "1ZFAIL500", "1ZRESET", "1ZHANG", "1ZBADJSON", "1ZRATELIMIT"):
        with pytest.raises(ProviderError) as caught:
            await provider.fetch("ups", number)
        texts += [str(caught.value), repr(caught.value), "".join(traceback.format_exception(caught.value))]
    assert "API key *** is not enabled" in texts[2]  # the echo was there, and was masked
    assert not [text for text in texts if KEY in text]


@pytest.mark.anyio
async def test_observer_sees_every_request(provider: ShipEngineProvider, calls: list[Call]) -> None:
    """The observer gets (status, elapsed, error kind) once per HTTP request, failures included."""
    await provider.fetch("ups", "1Z1")
    for number in ("1ZNOTFOUND", "1ZRESET", "1ZBADSCHEMA"):
        with pytest.raises(ProviderError):
            await provider.fetch("ups", number)
    await provider.check_connectivity()
    assert [(status, kind) for status, _, kind in calls] == [
        (200, None),
        (404, "not_found"),
        (None, "transient"),
        (200, "invalid_response"),
        (200, None),
    ]
    assert all(elapsed > 0 for _, elapsed, _ in calls)


@pytest.mark.anyio
async def test_check_connectivity_reports_latency(provider: ShipEngineProvider, sandbox: Sandbox) -> None:
    """The connectivity check is one cheap request whose latency includes the API's delay."""
    sandbox.configure(latency_s=0.05)
    latency_s = await provider.check_connectivity()
    assert 0.05 <= latency_s < 0.5
    assert sandbox.stats.total == 1 and sandbox.stats.by_number == {}


@pytest.mark.anyio
async def test_connectivity_check_failures_are_transient(provider: ShipEngineProvider, sandbox: Sandbox) -> None:
    """A non-auth failure of the connectivity check is a TransientProviderError (a 429, an unusable URL)."""
    sandbox.configure(rate_limit="1/min")
    await provider.check_connectivity()
    with pytest.raises(TransientProviderError):
        await provider.check_connectivity()
    unusable = ShipEngineProvider(ProviderConfig(api_key=Secret(KEY), base_url=""))
    try:
        with pytest.raises(TransientProviderError) as caught:
            await unusable.check_connectivity()
        assert type(caught.value) is TransientProviderError  # not the PermanentProviderError beneath
    finally:
        await unusable.aclose()


@pytest.mark.anyio
async def test_requests_reuse_connections_up_to_concurrency(config: ProviderConfig, sandbox: Sandbox) -> None:
    """Concurrent fetches run in parallel on the shared pool; the sandbox sees them all in flight."""
    provider = ShipEngineProvider(replace(config, concurrency=16))
    sandbox.configure(latency_s=0.2)
    try:
        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(provider.fetch, "ups", f"1ZPAR{i}")
    finally:
        await provider.aclose()
    assert sandbox.stats.peak_in_flight == 16 and sandbox.stats.by_status[200] == 16


@pytest.mark.anyio
async def test_connections_are_kept_alive(config: ProviderConfig, sandbox: Sandbox) -> None:
    """Many fetches from `concurrency` workers reuse a handful of keep-alive connections."""
    provider = ShipEngineProvider(replace(config, concurrency=4))

    async def worker(w: int) -> None:
        for i in range(25):
            await provider.fetch("ups", f"1ZKA{w}-{i}")

    try:
        async with anyio.create_task_group() as tg:
            for w in range(4):
                tg.start_soon(worker, w)
    finally:
        await provider.aclose()
    assert sandbox.stats.by_status[200] == 100 and sandbox.stats.connections <= 8
