"""
EasyPostProvider against the sandbox's `/v2` dialect over real HTTP: trackers, errors, the list limit, pushes.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import AsyncIterator

import pytest
from push_receiver import receiver

from shiptrackd.config import ProviderConfig, Secret
from shiptrackd.errors import ProviderAuthError, PushRejectedError, RateLimitedError, TransientProviderError
from shiptrackd.providers.base import Parcel, Registration
from shiptrackd.providers.easypost import EasyPostProvider
from shiptrackd.sandbox import Sandbox

KEY = "EZTK_provider_test"
SECRET = "wh\u00e9-\ufb01"  # NFKD changes it


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sb = Sandbox(time_scale=0)
    sb.easypost.configure({"api_key": KEY})
    async with sb.serve():
        yield sb


def config_for(sandbox: Sandbox, key: str = KEY) -> ProviderConfig:
    return ProviderConfig(
        name="easypost",
        api_key=Secret(key),
        webhook_secret=Secret(SECRET),
        base_url=sandbox.base_url + "/v2",
        timeout_s=0.5,
        concurrency=4,
    )


@pytest.fixture
async def provider(sandbox: Sandbox) -> AsyncIterator[EasyPostProvider]:
    provider = EasyPostProvider(config_for(sandbox))
    yield provider
    await provider.aclose()


@pytest.mark.anyio
async def test_fetch_creates_once_then_reads_by_id(provider: EasyPostProvider, sandbox: Sandbox) -> None:
    """The first fetch creates the tracker (its answer is the state); later ones read it by id, no second create."""
    first = await provider.fetch("usps", "EZ4000000004")
    second = await provider.fetch("usps", "EZ4000000004")
    assert first.status_code == second.status_code == "DE" and first.status_description == "delivered"
    assert len(sandbox.easypost.trackers) == 1
    assert sandbox.stats.by_number["EZ4000000004"] == 1  # the dialect counts creates per code
    assert sandbox.stats.total == 2


@pytest.mark.anyio
async def test_a_vanished_tracker_is_created_again(provider: EasyPostProvider, sandbox: Sandbox) -> None:
    """A tracker deleted behind our back (404 on read) is created again in the same fetch."""
    await provider.fetch("usps", "EZ2000000002")
    sandbox.easypost.trackers.clear()
    info = await provider.fetch("usps", "EZ2000000002")
    assert info.status_code == "IT" and len(sandbox.easypost.trackers) == 1


@pytest.mark.anyio
async def test_lifecycle_follows_simulated_time(provider: EasyPostProvider, sandbox: Sandbox) -> None:
    """A lifecycle number moves from pre_transit to delivered as the sandbox's time passes."""
    assert (await provider.fetch("ups", "1ZLCNORMAL0009")).status_code == "NY"
    sandbox.advance(days=5)
    info = await provider.fetch("ups", "1ZLCNORMAL0009")
    assert info.status_code == "DE" and info.carrier_code == "ups"
    assert [e.occurred_at for e in info.events] == sorted(e.occurred_at for e in info.events)


@pytest.mark.anyio
async def test_errors_map_to_what_the_engine_does(sandbox: Sandbox, provider: EasyPostProvider) -> None:
    """A bad key is ProviderAuthError; a 429 RateLimitedError; a 503 and a reset TransientProviderError."""
    wrong = EasyPostProvider(config_for(sandbox, "EZTK_wrong"))
    try:
        with pytest.raises(ProviderAuthError, match="APIKEY"):
            await wrong.fetch("usps", "EZ1000000001")
        with pytest.raises(ProviderAuthError):
            await wrong.check_connectivity()
    finally:
        await wrong.aclose()
    with pytest.raises(RateLimitedError) as limited:
        await provider.fetch("usps", "RATELIMIT01")
    assert 0 < limited.value.retry_after_s <= 1.0
    with pytest.raises(TransientProviderError, match="503"):
        await provider.fetch("usps", "FAIL503X")
    with pytest.raises(TransientProviderError):
        await provider.fetch("usps", "RESET01")
    assert await provider.check_connectivity() > 0


@pytest.mark.anyio
async def test_find_keeps_the_list_limit(provider: EasyPostProvider, sandbox: Sandbox) -> None:
    """Listing by code stays under 5 requests a second: eight lists in a row earn no 429."""
    await provider.register([Parcel("usps", "EZ3000000003")])
    for _ in range(8):
        (found,) = await provider.find("EZ3000000003", "usps")
        assert found.info.status_code == "IT" and found.info.status_detail_code == "OUT_FOR_DELIVERY"
    assert sandbox.stats.by_status[429] == 0


@pytest.mark.anyio
async def test_unregister_deletes_the_tracker(provider: EasyPostProvider, sandbox: Sandbox) -> None:
    """Register answers the tracker id as ref and the carrier; unregister by that ref deletes the tracker."""
    answer = await provider.register([Parcel("", "EZ1000000001")])
    registration = answer["EZ1000000001"]
    assert isinstance(registration, Registration) and registration.ref.startswith("trk_")
    assert registration.carrier_code == "usps"  # detected: none was given
    await provider.unregister([Parcel("usps", "EZ1000000001", registration.ref)])
    assert sandbox.easypost.trackers == {}


@pytest.mark.anyio
async def test_fetch_many_reads_by_ref(provider: EasyPostProvider, sandbox: Sandbox) -> None:
    """The engine's path: register once, then fetch_many with the ref reads the tracker (no create)."""
    registration = (await provider.register([Parcel("usps", "EZ2000000002")]))["EZ2000000002"]
    assert isinstance(registration, Registration)
    fresh = EasyPostProvider(config_for(sandbox))  # a restarted daemon: only the stored ref is known
    try:
        answer = await fresh.fetch_many([Parcel("usps", "EZ2000000002", registration.ref)])
    finally:
        await fresh.aclose()
    info = answer["EZ2000000002"]
    assert not isinstance(info, Exception) and info.status_code == "IT"
    assert (info.provider_status, info.provider_sub_status) == ("in_transit", "arrived_at_facility")
    assert sandbox.stats.by_number["EZ2000000002"] == 1  # one create in all


@pytest.mark.anyio
async def test_subscribed_pushes_verify_and_parse(provider: EasyPostProvider, sandbox: Sandbox) -> None:
    """Pushes to a webhook we subscribed verify under our secret (and under the documented algorithm) and parse."""
    async with receiver() as inbox:
        hook_id = await provider.subscribe(inbox.url("/hooks/easypost"))
        assert hook_id.startswith("hook_")
        await provider.register([Parcel("ups", "1ZLCNORMAL0010")])
        sandbox.advance(hours=30)
        (push,) = await inbox.wait_for(1)
        key = unicodedata.normalize("NFKD", SECRET).encode()
        assert push.header("x-hmac-signature") == "hmac-sha256-hex=" + hmac.new(key, push.body, "sha256").hexdigest()
        headers = {k.lower(): v for k, v in push.headers}
        await provider.verify_push(headers, push.body)
        with pytest.raises(PushRejectedError):
            await provider.verify_push(headers, push.body + b" ")
        (update,) = provider.parse_push(push.body)
        assert update.event_id.startswith("evt_") and update.event == "tracker.updated"
        assert update.tracking_number == "1ZLCNORMAL0010" and update.carrier_code == "ups"
        assert update.info is not None and update.info.status_code == "IT"
