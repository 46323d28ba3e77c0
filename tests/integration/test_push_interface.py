"""
Pushes from an interface provider (providers/base.py): a real daemon with an EasyPost account and
[webhooks] on takes `POST /hooks/easypost` signed per EasyPost's documented `X-Hmac-Signature`
(hex HMAC-SHA256 of the raw body under the webhook secret), through the same writer as ShipEngine's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import daemon_config

from shiptrackd.api.client import ApiClient
from shiptrackd.daemon import Daemon
from shiptrackd.sandbox import Sandbox

pytestmark = pytest.mark.anyio

SECRET = "whsec-test-secret"
NUMBER = "9400100000000000000042"


def _event(event_id: str, status: str) -> bytes:
    tracker = {
        "id": "trk_push0001",
        "object": "Tracker",
        "mode": "test",
        "tracking_code": NUMBER,
        "carrier": "USPS",
        "status": status,
        "status_detail": "arrived_at_destination" if status == "delivered" else "",
        "tracking_details": [
            {
                "object": "TrackingDetail",
                "message": "Delivered",
                "status": status,
                "status_detail": "",
                "datetime": "2026-11-30T10:00:00Z",
                "tracking_location": {"city": "Denver", "state": "CO", "country": "US", "zip": "80202"},
            }
        ],
    }
    event = {"id": event_id, "object": "Event", "mode": "test", "description": "tracker.updated", "result": tracker}
    return json.dumps(event).encode()


def _signed(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "X-Hmac-Signature": f"hmac-sha256-hex={digest}"}


async def test_a_signed_easypost_push_updates_the_shipment_and_a_forged_one_is_refused(
    short_tmp: Path, sandbox: Sandbox
) -> None:
    config = daemon_config(
        short_tmp,
        sandbox.base_url + "/v2",
        SHIPTRACK_PROVIDER__NAME="easypost",
        SHIPTRACK_PROVIDER__WEBHOOK_SECRET=SECRET,
        SHIPTRACK_WEBHOOKS__LISTEN="127.0.0.1:0",
    )
    async with anyio.create_task_group() as tg:
        daemon = await tg.start(Daemon(config, handle_signals=False).run)
        assert daemon.push is not None and daemon.push.address
        hook = f"http://{daemon.push.address}/hooks/easypost"
        async with ApiClient(config.daemon.socket) as client, httpx.AsyncClient() as http:
            added = await client.add_shipments([{"carrier_code": "usps", "tracking_number": NUMBER}])
            sid = added.added[0].id
            before = await client.shipment(sid)
            assert before.status_code != "DE"

            forged_body = _event("evt_forged", "delivered")
            forged = await http.post(hook, content=forged_body, headers=_signed(forged_body, SECRET + "-wrong"))
            assert forged.status_code == 401
            assert forged.json()["error"]["code"] == "bad_signature"
            unsigned = await http.post(hook, content=forged_body, headers={"content-type": "application/json"})
            assert unsigned.status_code == 401
            untouched = await client.shipment(sid)
            assert (untouched.status_code, untouched.push_count) == (before.status_code, before.push_count)

            body = _event("evt_genuine", "delivered")
            answer = await http.post(hook, content=body, headers=_signed(body, SECRET))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"ok": True, "outcome": "accepted", "matched": 1}
            after = await client.shipment(sid)
            assert after.status_code == "DE"
            assert after.push_count == before.push_count + 1

            again = await http.post(hook, content=body, headers=_signed(body, SECRET))
            assert again.json()["outcome"] == "duplicate"  # the Event id is the replay key
            assert (await client.shipment(sid)).push_count == after.push_count
        daemon.stop()
