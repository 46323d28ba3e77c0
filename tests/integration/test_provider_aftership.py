"""
AfterShipProvider against the sandbox's `/tracking/2026-07` dialect over real HTTP: trackings, 4003, per-endpoint
limits honoured from X-RateLimit-*, errors and pushes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest
from push_receiver import receiver

from shiptrackd.config import ProviderConfig, Secret
from shiptrackd.errors import (
    ProviderAuthError,
    PushRejectedError,
    RateLimitedError,
    ShipmentNotFoundError,
    TransientProviderError,
)
from shiptrackd.providers.aftership import AfterShipProvider
from shiptrackd.providers.base import Parcel, Registration
from shiptrackd.sandbox import Sandbox

KEY = "asat_provider_test"
SECRET = "as-webhook-secret"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sb = Sandbox(time_scale=0)
    sb.aftership.configure({"api_key": KEY})
    async with sb.serve():
        yield sb


def config_for(sandbox: Sandbox, key: str = KEY) -> ProviderConfig:
    return ProviderConfig(
        name="aftership",
        api_key=Secret(key),
        webhook_secret=Secret(SECRET),
        base_url=sandbox.base_url + "/tracking/2026-07",
        timeout_s=0.5,
        concurrency=4,
    )


@pytest.fixture
async def provider(sandbox: Sandbox) -> AsyncIterator[AfterShipProvider]:
    provider = AfterShipProvider(config_for(sandbox))
    yield provider
    await provider.aclose()


@pytest.mark.anyio
async def test_fetch_creates_once_then_reads_by_id(provider: AfterShipProvider, sandbox: Sandbox) -> None:
    """The first fetch creates (201, the answer is the state), later ones read by id (200)."""
    first = await provider.fetch("ups", "1ZLCNORMAL0001")
    sandbox.advance(days=5)
    second = await provider.fetch("ups", "1ZLCNORMAL0001")
    assert (first.status_code, second.status_code) == ("NY", "DE")
    assert (sandbox.stats.by_status[201], sandbox.stats.by_status[200]) == (1, 1)
    assert second.carrier_code == "ups" and second.status_description == "Delivered"
    hashes = [event.dedup_key for event in second.events]
    assert all(key.startswith("id|") for key in hashes) and len(set(hashes)) == len(hashes)


@pytest.mark.anyio
@pytest.mark.parametrize("duplicate_status", [400, 409])
async def test_an_existing_tracking_is_found_after_4003(sandbox: Sandbox, duplicate_status: int) -> None:
    """A restarted daemon (no ids known) creating an existing tracking takes the id from the 4003 answer."""
    sandbox.aftership.configure({"duplicate_status": duplicate_status})
    for _ in range(2):  # two provider objects: the second has forgotten the id
        provider = AfterShipProvider(config_for(sandbox))
        try:
            info = await provider.fetch("dhl_express", "LCNORMAL0002")
        finally:
            await provider.aclose()
        assert info.tracking_number == "LCNORMAL0002" and info.carrier_code == "dhl_express"
    assert sandbox.stats.by_status[duplicate_status] == 1 and len(sandbox.aftership.trackings) == 1


@pytest.mark.anyio
async def test_per_endpoint_limit_is_honoured_from_headers(provider: AfterShipProvider, sandbox: Sandbox) -> None:
    """With reads limited to 2 a second (told only by X-RateLimit-*), six reads wait for the window: no 429."""
    sandbox.aftership.configure({"rate_limits": {"GET /trackings/:id": 2}})
    await provider.register([Parcel("ups", "1ZLCNORMAL0003")])
    for _ in range(6):
        await provider.fetch("ups", "1ZLCNORMAL0003")
    assert sandbox.stats.by_status[429] == 0
    assert provider.windows.windows["GET /trackings/:id"].limit == 2 and provider.windows.waits >= 1


@pytest.mark.anyio
async def test_errors_map_to_what_the_engine_does(sandbox: Sandbox, provider: AfterShipProvider) -> None:
    """Bad key: ProviderAuthError; 429: RateLimitedError within a second; 503: transient; unknown id: not found."""
    wrong = AfterShipProvider(config_for(sandbox, "asat_wrong"))
    try:
        with pytest.raises(ProviderAuthError, match="Unauthorized"):
            await wrong.fetch("ups", "1ZLCNORMAL0004")
        with pytest.raises(ProviderAuthError):
            await wrong.check_connectivity()
    finally:
        await wrong.aclose()
    with pytest.raises(RateLimitedError) as limited:
        await provider.fetch("ups", "1ZRATELIMIT01")
    assert 0 <= limited.value.retry_after_s <= 1.0
    # AfterShip limits each endpoint apart: the 429 names its endpoint, whose window is held (only it waits).
    assert limited.value.endpoint == "POST /trackings"
    assert provider.windows.windows["POST /trackings"].remaining == 0
    with pytest.raises(TransientProviderError, match="503"):
        await provider.fetch("ups", "1ZFAIL503X")
    with pytest.raises(ShipmentNotFoundError, match="4004"):
        await provider.fetch("ups", "1ZNOTFOUND01")
    assert await provider.check_connectivity() > 0


@pytest.mark.anyio
async def test_unregister_deletes_the_tracking(provider: AfterShipProvider, sandbox: Sandbox) -> None:
    """Register answers the tracking id as ref; unregister by that ref deletes the tracking."""
    registration = (await provider.register([Parcel("usps", "LCNORMAL0005")]))["LCNORMAL0005"]
    assert isinstance(registration, Registration) and registration.carrier_code == "usps"
    await provider.unregister([Parcel("usps", "LCNORMAL0005", registration.ref)])
    assert sandbox.aftership.trackings == {}


@pytest.mark.anyio
async def test_fetch_many_reads_by_ref_and_recreates_a_vanished_one(
    provider: AfterShipProvider, sandbox: Sandbox
) -> None:
    """fetch_many reads by the stored ref; a tracking deleted at AfterShip is created again, not failed."""
    registration = (await provider.register([Parcel("ups", "1ZLCNORMAL0007")]))["1ZLCNORMAL0007"]
    assert isinstance(registration, Registration)
    info = (await provider.fetch_many([Parcel("ups", "1ZLCNORMAL0007", registration.ref)]))["1ZLCNORMAL0007"]
    assert not isinstance(info, Exception) and info.provider_status == "InfoReceived"
    sandbox.aftership.trackings.clear()
    again = (await provider.fetch_many([Parcel("ups", "1ZLCNORMAL0007", registration.ref)]))["1ZLCNORMAL0007"]
    assert not isinstance(again, Exception) and again.tracking_number == "1ZLCNORMAL0007"


@pytest.mark.anyio
async def test_pushes_verify_and_parse(provider: AfterShipProvider, sandbox: Sandbox) -> None:
    """Webhooks verify under our secret (and the documented algorithm, computed here) and parse to a tracking."""
    async with receiver() as inbox:
        sandbox.aftership.configure({"webhook_url": inbox.url("/hooks/aftership"), "webhook_secret": SECRET})
        await provider.register([Parcel("ups", "1ZLCNORMAL0006")])
        sandbox.advance(hours=10)
        (push,) = await inbox.wait_for(1)
        expected = base64.b64encode(hmac.new(SECRET.encode(), push.body, hashlib.sha256).digest()).decode()
        assert push.header("aftership-hmac-sha256") == expected
        headers = {k.lower(): v for k, v in push.headers}
        await provider.verify_push(headers, push.body)
        with pytest.raises(PushRejectedError):
            await provider.verify_push({"aftership-hmac-sha256": expected}, push.body.replace(b"ups", b"UPS"))
        (update,) = provider.parse_push(push.body)
        assert update.info is not None and update.tracking_number == "1ZLCNORMAL0006"
        assert update.event == "tracking_update" and len(update.event_id) == 36  # a UUID


@pytest.mark.anyio
async def test_per_endpoint_headers_do_not_steer_the_account_pace(provider: AfterShipProvider) -> None:
    """AfterShip's X-RateLimit-* describe one endpoint each, so the provider offers no account-wide quota observer."""
    from shiptrackd.providers.base import QuotaReporting

    assert not isinstance(provider, QuotaReporting)
