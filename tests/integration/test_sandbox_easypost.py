"""
The sandbox's EasyPost dialect over real loopback HTTP: auth, trackers, test codes, list limits, signed pushes.

Signatures are checked here with hmac/hashlib/unicodedata from the documented algorithm, not with our code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from push_receiver import receiver

from shiptrackd.providers.easypost_parse import parse_tracker, parse_tracker_body
from shiptrackd.providers.easypost_push import parse_event
from shiptrackd.sandbox import Sandbox

KEY = "EZTK_test_key"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sb = Sandbox(time_scale=0)
    sb.easypost.configure({"api_key": KEY})
    async with sb.serve():
        yield sb


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=5) as client:
        yield client


async def create(client: httpx.AsyncClient, code: str, carrier: str | None = "USPS") -> httpx.Response:
    tracker: dict[str, Any] = {"tracking_code": code}
    if carrier:
        tracker["carrier"] = carrier
    return await client.post("/v2/trackers", json={"tracker": tracker}, headers=BEARER)


AUTH_CASES = [
    (BEARER, 200),
    ({"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}, 200),
    ({"Authorization": "Bearer wrong"}, 401),
    ({"Authorization": "Basic !!!"}, 401),
    ({}, 401),
]


@pytest.mark.anyio
async def test_bearer_and_basic_auth(client: httpx.AsyncClient) -> None:
    """Bearer and Basic (key as username, empty password) both work; anything else is 401 in EasyPost's shape."""
    for headers, status in AUTH_CASES:
        answer = await client.get("/v2/trackers", headers=headers)
        assert answer.status_code == status, headers
        if status == 401:
            assert set(answer.json()["error"]) == {"code", "message", "errors"}


@pytest.mark.anyio
async def test_create_is_idempotent_and_located(client: httpx.AsyncClient) -> None:
    """The same code and carrier give the same tracker, with a Location header naming it."""
    first, again = await create(client, "9400100000000000000001"), await create(client, "9400100000000000000001")
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.headers["location"] == f"/api/v2/trackers/{first.json()['id']}"
    assert "x-ep-request-uuid" in first.headers
    tracker = first.json()
    assert tracker["object"] == "Tracker" and tracker["mode"] == "test"
    assert all(d["object"] == "TrackingDetail" for d in tracker["tracking_details"])
    assert tracker["carrier_detail"]["object"] == "CarrierDetail"


@pytest.mark.anyio
async def test_blank_code_is_422_parameter_required(client: httpx.AsyncClient) -> None:
    """A missing tracking_code is 422 PARAMETER.REQUIRED naming the field."""
    answer = await client.post("/v2/trackers", json={"tracker": {"carrier": "USPS"}}, headers=BEARER)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "PARAMETER.REQUIRED"
    assert error["errors"][0]["field"] == "tracker.tracking_code"


TEST_CODES = [
    ("EZ1000000001", "pre_transit", "NY"),
    ("EZ2000000002", "in_transit", "IT"),
    ("EZ3000000003", "out_for_delivery", "IT"),
    ("EZ4000000004", "delivered", "DE"),
    ("EZ5000000005", "return_to_sender", "EX"),
    ("EZ6000000006", "failure", "EX"),
    ("EZ7000000007", "unknown", "UN"),
]


@pytest.mark.anyio
async def test_test_mode_codes(client: httpx.AsyncClient) -> None:
    """The documented test codes answer their status in test mode, and our parser maps each one."""
    for code, status, ours in TEST_CODES:
        answer = await create(client, code)
        assert answer.json()["status"] == status
        tracker = parse_tracker_body(answer.content)
        assert tracker.info.status_code == ours and tracker.info.status_description == status
        fetched = await client.get(f"/v2/trackers/{tracker.id}", headers=BEARER)
        assert fetched.json()["status"] == status
        assert fetched.json()["tracking_details"] == answer.json()["tracking_details"]
        assert (len(answer.json()["tracking_details"]) == 0) == (status == "unknown")


@pytest.mark.anyio
async def test_retrieve_unknown_is_404(client: httpx.AsyncClient) -> None:
    """An unknown tracker id is 404 NOT_FOUND in EasyPost's error shape."""
    answer = await client.get("/v2/trackers/trk_nope", headers=BEARER)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.anyio
async def test_list_by_code_and_pages(client: httpx.AsyncClient) -> None:
    """`tracking_codes[]` filters; `page_size` and `before_id` page newest first with `has_more`."""
    ids = [(await create(client, f"EZ{i}000000000{i}")).json()["id"] for i in (1, 2, 3)]
    one = await client.get("/v2/trackers", params={"tracking_codes[]": "EZ20000000002"}, headers=BEARER)
    assert [t["id"] for t in one.json()["trackers"]] == [ids[1]]
    page = await client.get("/v2/trackers", params={"page_size": 2}, headers=BEARER)
    assert page.json()["has_more"] is True and len(page.json()["trackers"]) == 2
    rest = await client.get(
        "/v2/trackers", params={"page_size": 2, "before_id": page.json()["trackers"][-1]["id"]}, headers=BEARER
    )
    assert rest.json()["has_more"] is False
    seen = [t["id"] for t in page.json()["trackers"] + rest.json()["trackers"]]
    assert sorted(seen) == sorted(ids)


@pytest.mark.anyio
async def test_list_endpoint_limited_to_5_per_second(client: httpx.AsyncClient) -> None:
    """Index requests beyond 5 a second are answered 429."""
    answers = [await client.get("/v2/trackers", headers=BEARER) for _ in range(12)]
    statuses = [a.status_code for a in answers]
    assert statuses[:5] == [200] * 5 and 429 in statuses
    assert next(a for a in answers if a.status_code == 429).json()["error"]["code"]


@pytest.mark.anyio
async def test_forced_faults_in_the_code(client: httpx.AsyncClient) -> None:
    """Magic substrings force a fault on create: RATELIMIT is 429, FAIL503 is 503."""
    assert (await create(client, "RATELIMIT1")).status_code == 429
    assert (await create(client, "FAIL503X")).status_code == 503


def documented_signature(body: bytes, secret: str) -> str:
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


@pytest.mark.anyio
async def test_pushes_are_signed_tracker_updated_events(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """A registered webhook gets `tracker.updated` Events, signed as documented, as the parcel moves."""
    secret = "s\u00e9cret\ufb01"  # needs NFKD
    async with receiver() as inbox:
        hook = await client.post(
            "/v2/webhooks", json={"webhook": {"url": inbox.url(), "webhook_secret": secret}}, headers=BEARER
        )
        assert hook.status_code == 201 and hook.json()["object"] == "Webhook"
        tracker = (await create(client, "LCNORMAL0001")).json()
        sandbox.advance(hours=30)
        (push,) = await inbox.wait_for(1)
        assert push.header("X-Hmac-Signature") == documented_signature(push.body, secret)
        assert push.header("content-type") == "application/json"
        event = json.loads(push.body)
        assert event["object"] == "Event" and event["description"] == "tracker.updated"
        assert event["result"]["id"] == tracker["id"] and event["id"].startswith("evt_")
        assert event["previous_attributes"] == {"status": "pre_transit"}
        parsed = parse_event(push.body)
        assert parsed.tracker is not None and parsed.tracker.info.status_code == "IT"
        assert parse_tracker(event["result"]).info.events  # the history rides along


@pytest.mark.anyio
async def test_bad_signature_fault(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """The `bad_signature` push fault sends a body whose signature does not verify under the secret."""
    sandbox.pusher.configure_faults({"bad_signature": 1.0})
    async with receiver() as inbox:
        await client.post("/v2/webhooks", json={"webhook": {"url": inbox.url(), "webhook_secret": "k"}}, headers=BEARER)
        await create(client, "LCNORMAL0002")
        sandbox.advance(hours=30)
        (push,) = await inbox.wait_for(1)
        assert push.header("x-hmac-signature") != documented_signature(push.body, "k")
        assert sandbox.pusher.stats.faults["bad_signature"] == 1


@pytest.mark.anyio
async def test_failed_push_is_retried(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """A receiver answering 500 gets the same Event again (same id) until it answers 2xx."""
    async with receiver() as inbox:
        inbox.fail_next = 1
        await client.post("/v2/webhooks", json={"webhook": {"url": inbox.url(), "webhook_secret": "k"}}, headers=BEARER)
        await create(client, "LCNORMAL0003")
        sandbox.advance(hours=30)
        (push,) = await inbox.wait_for(1)
        with anyio.fail_after(5):
            while not sandbox.pusher.idle:  # noqa: ASYNC110  # a counter, polled under a deadline
                await anyio.sleep(0.01)
        assert sandbox.pusher.stats.by_status[500] == 1 and sandbox.pusher.stats.delivered == 1
        assert sandbox.pusher.stats.delivered_ids == [json.loads(push.body)["id"]]


@pytest.mark.anyio
async def test_list_accepts_every_array_spelling(client: httpx.AsyncClient) -> None:
    """`tracking_codes[]`, `tracking_codes[0]` and a comma list all filter the same way."""
    wanted = (await create(client, "EZ5000000005")).json()["id"]
    await create(client, "EZ6000000006")
    for params in (
        {"tracking_codes[]": "EZ5000000005"},
        {"tracking_codes[0]": "EZ5000000005"},
        {"tracking_codes": "EZ5000000005"},
    ):
        answer = await client.get("/v2/trackers", params=params, headers=BEARER)
        assert [t["id"] for t in answer.json()["trackers"]] == [wanted], params
