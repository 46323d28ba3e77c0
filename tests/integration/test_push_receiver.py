"""
Pushes in (issue 10): the sandbox signs and POSTs real ShipEngine pushes to a real daemon's listener
over loopback, with its own RSA key published at /jwks; the store is the daemon's real SQLite file.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from conftest import SANDBOX_KEY, daemon_config

from shiptrackd.api.client import ApiClient
from shiptrackd.clock import Clock, FakeClock
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox
from shiptrackd.sandbox.push import iso_now, signed_headers
from shiptrackd.wire.answers import ShipmentDetail

pytestmark = pytest.mark.anyio
T = TypeVar("T")


@dataclass
class Pushing:
    daemon: Daemon
    client: ApiClient
    sandbox: Sandbox
    hook: str  # the daemon's /hooks/shipengine URL


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 10.0) -> T:
    """Poll *check* until it returns something truthy, failing after *timeout_s*."""
    with anyio.fail_after(timeout_s):
        while True:
            result = await check()
            if result:
                return result
            await anyio.sleep(0.02)


@asynccontextmanager
async def push_rig(state_dir: Path, *, clock: Clock | None = None, **env: str) -> AsyncIterator[Pushing]:
    """A daemon with [webhooks] on, its JWKS and tracking API in a frozen-time sandbox that pushes to it."""
    async with Sandbox(api_key=SANDBOX_KEY, time_scale=0).serve() as sandbox:
        sandbox.configure(push_retry_s=0.05)
        config = daemon_config(
            state_dir,
            sandbox.base_url,
            SHIPTRACK_WEBHOOKS__LISTEN="127.0.0.1:0",
            SHIPTRACK_WEBHOOKS__JWKS_URL=f"{sandbox.base_url}/jwks",
            **env,
        )
        async with anyio.create_task_group() as tg:
            daemon = await tg.start(Daemon(config, clock=clock, handle_signals=False).run)
            assert daemon.push is not None and daemon.push.address
            hook = f"http://{daemon.push.address}/hooks/shipengine"
            sandbox.push.register_webhook({"event": "track", "url": hook})
            async with ApiClient(config.daemon.socket) as client:
                yield Pushing(daemon, client, sandbox, hook)
            daemon.stop()


@pytest.fixture
async def pushing(short_tmp: Path) -> AsyncIterator[Pushing]:
    async with push_rig(short_tmp) as rig:
        yield rig


async def _tracked(p: Pushing, number: str, carrier: str = "ups") -> str:
    """Add a shipment and wait until the push loop subscribed it (tracking/start reached the sandbox)."""
    added = await p.client.add_shipments([{"carrier_code": carrier, "tracking_number": number}])
    shipment_id = added.added[0].id
    await eventually(lambda: _subscribed(p, shipment_id))
    return shipment_id


async def _subscribed(p: Pushing, shipment_id: str) -> bool:
    return (await p.client.shipment(shipment_id)).subscribed_at is not None


async def _pushes(p: Pushing, shipment_id: str, count: int) -> ShipmentDetail:
    async def enough() -> ShipmentDetail | None:
        shipment = await p.client.shipment(shipment_id)
        return shipment if shipment.push_count >= count else None

    return await eventually(enough)


def _delivered(p: Pushing, number: str) -> list[Any]:
    return [d for d in p.sandbox.push.deliveries if d.tracking_number == number]


async def test_a_valid_push_updates_the_shipment_once(pushing: Pushing) -> None:
    """A signed push changes the status and history once, answered 2xx only after the commit; no poll needed."""
    p = pushing
    shipment_id = await _tracked(p, "1ZLCNORMAL0001")
    first = await _pushes(p, shipment_id, 1)  # the history as it stood at subscription
    assert first.status_code == "NY"
    calls_before = p.sandbox.stats.by_number["1ZLCNORMAL0001"]
    p.sandbox.advance(hours=30)
    shipment = await _pushes(p, shipment_id, 2)
    assert shipment.status_code == "IT"
    assert len(shipment.events) == len({(e.occurred_at, e.description) for e in shipment.events})
    assert shipment.schedule_reason.startswith("push: safety poll every")
    assert p.sandbox.stats.by_number["1ZLCNORMAL0001"] == calls_before  # not a single poll
    assert [d.answers for d in _delivered(p, "1ZLCNORMAL0001")] == [[200], [200]]
    status = await p.client.webhooks()
    assert status.totals == {"accepted": 2} and status.subscribed == 1
    why = await p.client.why(shipment_id)
    assert why.push.push_count == 2 and why.push.regime.startswith("push:")


async def test_duplicates_and_reordered_histories_change_nothing(pushing: Pushing) -> None:
    """The same push again, re-signed, and an older history after a newer one leave status and events as they were."""
    p = pushing
    shipment_id = await _tracked(p, "1ZLCNORMAL0002")
    p.sandbox.advance(hours=30)
    await _pushes(p, shipment_id, 2)
    p.sandbox.advance(hours=20)
    after = await _pushes(p, shipment_id, 3)
    assert after.status_code == "IT"
    deliveries = _delivered(p, "1ZLCNORMAL0002")
    async with httpx.AsyncClient() as http:
        # The very same bytes (a retry): the replay cache answers it without touching the store.
        same = await http.post(p.hook, content=deliveries[-1].body, headers=deliveries[-1].headers)
        assert same.status_code == 200 and same.json()["outcome"] == "duplicate"
        # An older history, freshly signed (a late redelivery): merged, the status does not move back.
        old = deliveries[0]
        stamp = iso_now(datetime.now(UTC))
        late = await http.post(
            p.hook, content=old.body, headers=signed_headers(p.sandbox.push.key, "sandbox-rsa-1", stamp, old.body)
        )
        assert late.status_code == 200 and late.json()["outcome"] == "stale"
        # The newest history again, freshly signed: nothing new.
        newest = deliveries[-1]
        again = await http.post(
            p.hook,
            content=newest.body,
            headers=signed_headers(p.sandbox.push.key, "sandbox-rsa-1", iso_now(datetime.now(UTC)), newest.body),
        )
        assert again.status_code == 200 and again.json()["outcome"] == "accepted"
    final = await p.client.shipment(shipment_id)
    assert final.status_code == after.status_code
    assert final.events == after.events
    assert final.status_changed_at == after.status_changed_at


async def test_forged_and_stale_pushes_are_refused_and_never_touch_the_store(pushing: Pushing) -> None:
    """Tampered body 401, unknown kid 401, missing headers 404, stale timestamp 400, oversize 413: store untouched."""
    p = pushing
    shipment_id = await _tracked(p, "1ZLCNORMAL0003")
    before = await _pushes(p, shipment_id, 1)
    body = _push_body(p, "ups", "1ZLCNORMAL0003", hours=30)  # what the next push would say (time stays put)
    key, kid = p.sandbox.push.key, "sandbox-rsa-1"
    now = datetime.now(UTC)
    good = signed_headers(key, kid, iso_now(now), body)
    tampered = body.replace(b'"IT"', b'"DE"', 1)
    cases = [
        (tampered, good, 401, "bad_signature"),
        (body, {**good, "x-shipengine-rsa-sha256-key-id": "no-such-kid"}, 401, "unknown_key"),
        (body, {**signed_headers(p.sandbox.push.rogue_key, kid, iso_now(now), body)}, 401, "bad_signature"),
        (body, {"content-type": "application/json"}, 404, "not_found"),
        (body, {k: v for k, v in good.items() if k != "x-shipengine-timestamp"}, 404, "not_found"),
        (body, signed_headers(key, kid, iso_now(now - timedelta(minutes=6)), body), 400, "stale_timestamp"),
        (body, signed_headers(key, kid, "yesterday", body), 400, "bad_timestamp"),
        (b"x" * (1024 * 1024 + 1), good, 413, "body_too_large"),
    ]
    async with httpx.AsyncClient() as http:
        for raw, headers, status, code in cases:
            answer = await http.post(p.hook, content=raw, headers=headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (status, code)
        assert (await http.post(p.hook.replace("shipengine", "nosuch"), content=body, headers=good)).status_code == 404
        assert (await http.get(p.hook.replace("/hooks/shipengine", "/v1/status"))).status_code == 404  # no control API
        assert (await http.get(p.hook.replace("/hooks/shipengine", "/healthz"))).json()["ok"] is True
    after = await p.client.shipment(shipment_id)
    assert (after.status_code, after.push_count, after.events) == (before.status_code, before.push_count, before.events)
    totals = (await p.client.webhooks()).totals
    assert totals is not None
    assert totals["bad_signature"] == 2 and totals["missing_headers"] == 2 and totals["stale"] == 2
    assert totals["unknown_key"] == 1 and totals["too_large"] == 1 and totals["unknown_provider"] == 1


def _push_body(p: Pushing, carrier: str, number: str, *, hours: float) -> bytes:
    """The raw body of the push the sandbox would send *hours* from now."""
    from shiptrackd.sandbox import lifecycle

    first = p.sandbox.first_seen_at(carrier, number)
    assert first is not None
    body = lifecycle.tracking_body(carrier, number, first_seen_at=first, now=p.sandbox.now() + timedelta(hours=hours))
    data = {k: body.get(k) for k in ("tracking_number", "status_code", "status_detail_code", "events")}
    url = f"{p.sandbox.base_url}/v1/tracking?carrier_code=ups&tracking_number={number}"
    return json.dumps({"resource_url": url, "resource_type": "API_TRACK", "data": data}).encode()


async def test_jwks_down_answers_503_and_the_retry_is_accepted(pushing: Pushing) -> None:
    """Keys that cannot be fetched are no proof of forgery: 503, and the provider's retry lands once they are back."""
    p = pushing
    assert p.daemon.push is not None
    p.daemon.push.jwks.keys.clear()  # as if freshly started: nothing cached
    p.daemon.push.jwks.retry_failed_after_s = 0.0
    p.sandbox.configure(jwks_down=True, push_retries=0)
    shipment_id = await _tracked(p, "1ZLCNORMAL0004")
    delivery = await eventually(lambda: _async(_delivered(p, "1ZLCNORMAL0004")))
    first = delivery[0]
    await eventually(lambda: _async(first.answers))
    assert first.answers == [503]
    assert (await p.client.shipment(shipment_id)).push_count == 0
    p.sandbox.configure(jwks_down=False)
    async with httpx.AsyncClient() as http:
        retry = await http.post(p.hook, content=first.body, headers=first.headers)
    assert retry.status_code == 200 and retry.json()["outcome"] == "accepted"
    assert (await p.client.shipment(shipment_id)).push_count == 1
    totals = (await p.client.webhooks()).totals
    assert totals is not None and totals["jwks_unavailable"] == 1


async def _async(value: Any) -> Any:
    return value


async def test_webhooks_setup_handles_409_by_updating(pushing: Pushing, short_tmp: Path) -> None:
    """`webhooks setup` creates the track webhook, and when one exists (409) finds and updates it."""
    p = pushing
    sandbox = p.sandbox
    sandbox.push.webhooks.clear()
    sandbox.push.register_webhook({"event": "track", "url": "https://old.example/hooks"})
    config = p.daemon.config
    import dataclasses

    assert p.daemon.push is not None
    p.daemon.push.reconfigure(
        dataclasses.replace(
            config, webhooks=dataclasses.replace(config.webhooks, public_url="https://track.example.com")
        )
    )
    result = await p.client.webhooks_setup()
    assert result.action == "updated" and result.previous_url == "https://old.example/hooks"
    assert sandbox.push.track_url() == "https://track.example.com/hooks/shipengine"
    assert (await p.client.webhooks_setup()).action == "unchanged"
    sandbox.push.webhooks.clear()
    assert (await p.client.webhooks_setup()).action == "created"
    assert len(sandbox.push.webhooks) == 1
    assert (await p.client.webhooks()).registered_url == "https://track.example.com/hooks/shipengine"


async def test_silence_warns_and_polling_takes_over_until_pushes_return(short_tmp: Path) -> None:
    """No push for silence_after with subscriptions: `webhooks` warns, safety-polled shipments are due at once
    and polled at their normal cadence; the next push puts them back on the safety net."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    async with push_rig(short_tmp, clock=clock) as p:
        await p.client.loop_action("push", "pause")  # stepped by hand below, not once a simulated minute
        added = await p.client.add_shipments([{"carrier_code": "ups", "tracking_number": "1ZLCNORMAL0005"}])
        shipment_id = added.added[0].id
        await p.client.loop_action("push", "trigger")
        await eventually(lambda: _subscribed(p, shipment_id))
        p.sandbox.advance(hours=30)
        pushed = await _pushes(p, shipment_id, 2)
        assert pushed.status_code == "IT" and pushed.schedule_reason.startswith("push: safety poll")
        health = await p.client.health(fresh=True)
        assert {c.name: c.level for c in health.checks}["webhooks"] == "ok"

        await clock.advance(hours=7)  # past silence_after (6h): no push came
        health = await p.client.health(fresh=True)
        webhooks = {c.name: c for c in health.checks}["webhooks"]
        assert webhooks.level == "warning" and "polling has taken over" in webhooks.message
        calls = p.sandbox.stats.by_number["1ZLCNORMAL0005"]
        await p.client.loop_action("push", "trigger")  # notices the silence: pulls the safety polls forward
        polled = await eventually(
            lambda: _when(p, shipment_id, lambda s: s.schedule_reason == "push channel silent: in transit: every 4h")
        )
        assert p.sandbox.stats.by_number["1ZLCNORMAL0005"] == calls + 1  # polled at once, by the triggered sync
        assert polled.next_sync_at is not None and polled.next_sync_at > clock.now()
        assert "silent" in (await p.client.why(shipment_id)).push.regime

        await clock.advance(hours=20)  # critical after silence_critical_after (24h)
        health = await p.client.health(fresh=True)
        assert {c.name: c.level for c in health.checks}["webhooks"] == "critical"
        p.sandbox.advance(hours=60)  # pushes return (the parcel is delivered meanwhile)
        back = await _pushes(p, shipment_id, 3)
        assert back.status_code == "DE" and back.schedule_reason == "delivered: one confirming check"
        health = await p.client.health(fresh=True)
        assert {c.name: c.level for c in health.checks}["webhooks"] == "ok"
        uds = httpx.AsyncHTTPTransport(uds=str(p.daemon.config.daemon.socket))
        async with httpx.AsyncClient(transport=uds, base_url="http://localhost") as http:
            metrics = (await http.get("/metrics")).text
        assert 'shiptrackd_webhooks_total{outcome="accepted"} 3.0' in metrics
        assert "shiptrackd_webhook_subscriptions 1.0" in metrics


async def _when(p: Pushing, shipment_id: str, ok: Callable[[ShipmentDetail], bool]) -> ShipmentDetail | None:
    shipment = await p.client.shipment(shipment_id)
    return shipment if ok(shipment) else None


async def test_the_listener_serves_its_two_routes_only_in_the_api_error_shape(pushing: Pushing) -> None:
    """404 and 405 (with Allow) in the JSON error shape, 403 to a browser page, HEAD on the liveness route."""
    p = pushing
    base = p.hook.removesuffix("/hooks/shipengine")
    async with httpx.AsyncClient() as http:
        wrong_method = await http.get(p.hook)
        assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        health_post = await http.post(f"{base}/healthz")
        assert (health_post.status_code, health_post.headers["allow"]) == (405, "GET, HEAD")
        head = await http.head(f"{base}/healthz")
        assert (head.status_code, head.content) == (200, b"")
        for path in ("/v1/status", "/hooks/shipengine/extra", "/hooks/", "/"):
            missing = await http.post(f"{base}{path}")
            assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found"), path
        page = await http.post(p.hook, content=b"{}", headers={"origin": "https://evil.example"})
        assert (page.status_code, page.json()["error"]["code"]) == (403, "forbidden")


async def test_a_push_half_sent_at_shutdown_is_answered_503(short_tmp: Path) -> None:
    """The daemon stops while a push's body is still coming: 503 stopping (the sender retries), not a 500."""
    async with push_rig(short_tmp) as p:
        host, _, port = p.hook.removeprefix("http://").partition("/")[0].rpartition(":")
        stream = await anyio.connect_tcp(host, int(port))
        await stream.send(b"POST /hooks/shipengine HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await anyio.wait_all_tasks_blocked()
        p.daemon.stop()
        answer = b""
        with anyio.fail_after(10):
            while b"}}" not in answer:
                answer += await stream.receive()
        await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 503") and b'"stopping"' in answer
