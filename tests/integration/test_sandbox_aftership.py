"""
The sandbox's AfterShip (2026-07) dialect over real loopback HTTP: envelope, trackings, per-endpoint limits, pushes.

Signatures are checked here with hmac/hashlib/base64 from the documented algorithm, not with our code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from push_receiver import receiver

from shiptrackd.providers.aftership_parse import parse_tracking_body
from shiptrackd.providers.aftership_push import parse_event
from shiptrackd.sandbox import Sandbox

KEY = "asat_test_key"
AUTH = {"as-api-key": KEY}
BASE = "/tracking/2026-07"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sb = Sandbox(time_scale=0)
    sb.aftership.configure({"api_key": KEY})
    async with sb.serve():
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url + BASE, timeout=5) as client:
        yield client


@pytest.mark.anyio
async def test_key_required_and_envelope_always(client: httpx.AsyncClient) -> None:
    """A wrong or missing `as-api-key` is 401 `Unauthorized` in the meta/data envelope."""
    for headers in ({}, {"as-api-key": "nope"}):
        answer = await client.get("/trackings/x", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["meta"]["type"] == "Unauthorized" and answer.json()["data"] == {}


@pytest.mark.anyio
async def test_create_get_duplicate_and_missing(client: httpx.AsyncClient) -> None:
    """Create (flat body) is 201; the same again is meta 4003 naming the id; get by id; unknown id is 4004."""
    created = await client.post("/trackings", json={"tracking_number": "LCNORMAL0001", "slug": "ups"}, headers=AUTH)
    assert created.status_code == 201 and created.json()["meta"]["code"] == 201
    tracking = parse_tracking_body(created.content)
    assert tracking.slug == "ups" and tracking.info.tracking_number == "LCNORMAL0001"
    again = await client.post("/trackings", json={"tracking_number": "LCNORMAL0001", "slug": "ups"}, headers=AUTH)
    assert again.status_code == 400 and again.json()["meta"]["code"] == 4003
    assert again.json()["data"]["id"] == tracking.id
    fetched = await client.get(f"/trackings/{tracking.id}", headers=AUTH)
    assert fetched.status_code == 200 and parse_tracking_body(fetched.content).id == tracking.id
    missing = await client.get("/trackings/0000", headers=AUTH)
    assert missing.status_code == 404
    assert (missing.json()["meta"]["code"], missing.json()["meta"]["type"]) == (4004, "NotFound")
    listed = await client.get("/trackings", params={"tracking_numbers": "LCNORMAL0001"}, headers=AUTH)
    assert [t["id"] for t in listed.json()["data"]["trackings"]] == [tracking.id]


@pytest.mark.anyio
async def test_rate_limit_headers_on_every_answer(client: httpx.AsyncClient) -> None:
    """`X-RateLimit-Limit/Remaining/Reset` come with every answer, per endpoint, Reset a Unix time."""
    post = await client.post("/trackings", json={"tracking_number": "1ZLCNORMAL01"}, headers=AUTH)
    get = await client.get(f"/trackings/{post.json()['data']['id']}", headers=AUTH)
    missing = await client.get("/trackings/nope", headers=AUTH)
    assert post.headers["X-RateLimit-Limit"] == "20" and get.headers["X-RateLimit-Limit"] == "5"
    assert missing.headers["X-RateLimit-Limit"] == "5"
    reset = int(get.headers["X-RateLimit-Reset"])
    assert time.time() - 5 < reset <= time.time() + 2
    assert int(get.headers["X-RateLimit-Remaining"]) < 5


@pytest.mark.anyio
async def test_per_endpoint_limit_answers_429(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """Over an endpoint's per-second limit: 429 `TooManyRequests`, Remaining 0; other endpoints unaffected."""
    sandbox.aftership.configure({"rate_limits": {"GET /trackings/:id": 2}})
    created = await client.post("/trackings", json={"tracking_number": "LCNORMAL0002"}, headers=AUTH)
    tracking_id = created.json()["data"]["id"]
    answers = [await client.get(f"/trackings/{tracking_id}", headers=AUTH) for _ in range(8)]
    limited = [a for a in answers if a.status_code == 429]
    assert len(limited) >= 8 - 4  # at most two windows' worth got through, even across a second boundary
    assert limited[0].json()["meta"]["type"] == "TooManyRequests"
    assert limited[0].headers["X-RateLimit-Remaining"] == "0"
    other = await client.post("/trackings", json={"tracking_number": "LCNORMAL0003"}, headers=AUTH)
    assert other.status_code == 201


@pytest.mark.anyio
async def test_checkpoint_hashes_are_stable(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """Checkpoints carry a `hash` that stays the same on later fetches, with new ones appended as time passes."""
    created = await client.post("/trackings", json={"tracking_number": "LCNORMAL0004"}, headers=AUTH)
    tracking_id = created.json()["data"]["id"]
    sandbox.advance(hours=20)
    before = (await client.get(f"/trackings/{tracking_id}", headers=AUTH)).json()["data"]["checkpoints"]
    sandbox.advance(hours=60)
    after = (await client.get(f"/trackings/{tracking_id}", headers=AUTH)).json()["data"]
    assert before and [c["hash"] for c in after["checkpoints"][: len(before)]] == [c["hash"] for c in before]
    assert after["tag"] == "Delivered" and len(after["checkpoints"]) > len(before)


@pytest.mark.anyio
async def test_a_parcel_with_no_scans_expires(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """A number that never gets a scan is Pending, then Expired after 30 days."""
    created = await client.post("/trackings", json={"tracking_number": "LCSTUCK0001"}, headers=AUTH)
    assert created.json()["data"]["tag"] == "Pending"
    sandbox.advance(days=31)
    fetched = await client.get(f"/trackings/{created.json()['data']['id']}", headers=AUTH)
    assert fetched.json()["data"]["tag"] == "Expired"


def documented_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.mark.anyio
async def test_pushes_signed_with_event_ids(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """Tag changes are pushed as `tracking_update` webhooks, signed as documented, each with its own event_id."""
    async with receiver() as inbox:
        sandbox.aftership.configure({"webhook_url": inbox.url("/hooks/aftership"), "webhook_secret": "whsec"})
        await client.post("/trackings", json={"tracking_number": "LCNORMAL0005"}, headers=AUTH)
        sandbox.advance(hours=10)
        (first,) = await inbox.wait_for(1)
        sandbox.advance(hours=70)
        pushes = await inbox.wait_for(2)
        for push in pushes:
            assert push.header("aftership-hmac-sha256") == documented_signature(push.body, "whsec")
        payloads = [json.loads(p.body) for p in pushes]
        assert {p["event"] for p in payloads} == {"tracking_update"}
        assert len({p["event_id"] for p in payloads}) == 2
        assert set(payloads[0]) == {"ts", "event", "event_id", "is_tracking_first_tag", "msg"}
        assert payloads[-1]["msg"]["tag"] == "Delivered" and payloads[-1]["is_tracking_first_tag"] is True
        event = parse_event(first.body)
        assert event.tracking is not None and event.tracking.info.status_code in ("AC", "IT")


@pytest.mark.anyio
async def test_duplicate_push_fault_repeats_the_event_id(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """The `duplicate` push fault delivers one webhook twice with the same event_id (receivers dedupe on it)."""
    sandbox.pusher.configure_faults({"duplicate": 1.0})
    async with receiver() as inbox:
        sandbox.aftership.configure({"webhook_url": inbox.url(), "webhook_secret": "k"})
        await client.post("/trackings", json={"tracking_number": "LCNORMAL0006"}, headers=AUTH)
        sandbox.advance(hours=10)
        one, two = await inbox.wait_for(2)
        assert one.body == two.body and json.loads(one.body)["event_id"] == json.loads(two.body)["event_id"]
    assert sandbox.pusher.stats.faults["duplicate"] == 1


@pytest.mark.anyio
async def test_the_older_wrapped_create_body_is_understood(client: httpx.AsyncClient) -> None:
    """A 2024-04 client's `{"tracking": {...}}` body creates the same tracking as 2026-07's flat one."""
    created = await client.post(
        "/trackings", json={"tracking": {"tracking_number": "LCNORMAL0077", "slug": "ups"}}, headers=AUTH
    )
    assert created.status_code == 201 and created.json()["data"]["tracking_number"] == "LCNORMAL0077"
