"""
AfterShip tracking webhooks: check `aftership-hmac-sha256`, then read the payload it signs.

The signature (reference/webhooks.md §1, AfterShip's webhook-signature page) is the base64
of HMAC-SHA256 over the raw body, keyed with the webhook secret. Nothing time-bound is
signed and AfterShip retries up to 14 times, so the receiver deduplicates on `event_id`.
(AfterShip's Returns and Warranty products sign with `as-signature-hmac-sha256`; that header
is not this one and is not accepted.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from shiptrackd.errors import InvalidResponseError
from shiptrackd.providers import json_fields as jf
from shiptrackd.providers.aftership_parse import Tracking, parse_tracking
from shiptrackd.providers.http_headers import Headers, header

SIGNATURE_HEADER = "aftership-hmac-sha256"
TRACKING_EVENTS = frozenset({"tracking_update", "edd_revise"})


@dataclass(frozen=True)
class AfterShipEvent:
    """A verified webhook: `event_id` (the dedupe key), `event`, `ts`, and the tracking if it carries one."""

    id: str
    event: str
    ts: int | None
    tracking: Tracking | None


def signature(body: bytes, secret: str) -> str:
    """The header value AfterShip sends for *body* (the sandbox signs its pushes with this)."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify(headers: Headers, body: bytes, secret: str) -> bool:
    """True only if `aftership-hmac-sha256` is present and is the signature of *body* (constant time)."""
    if not secret:
        return False
    given = header(headers, SIGNATURE_HEADER)
    if given is None:
        return False
    try:
        given_digest = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(given_digest, expected)


def parse_event(body: bytes) -> AfterShipEvent:
    """A verified webhook body; raises InvalidResponseError naming the field that is wrong."""
    data = jf.load_object(body, status=400)
    event_id = jf.text(data, "event_id")
    if not event_id:
        raise InvalidResponseError("event_id: missing", status=400)
    event = jf.text(data, "event")
    ts = data.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        raise InvalidResponseError(f"ts: expected an integer, got {jf.type_name(ts)}", status=400)
    tracking = None
    if event in TRACKING_EVENTS:
        tracking = parse_tracking(jf.obj(data, "msg"), where="msg")
    return AfterShipEvent(id=event_id, event=event, ts=ts, tracking=tracking)
