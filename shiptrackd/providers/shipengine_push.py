"""
ShipEngine's tracking pushes: the signature check and the `API_TRACK` payload, as a push provider.

Signature (reference/webhooks.md §1, tracking-apis.md §1.11): headers
`x-shipengine-rsa-sha256-key-id`, `-signature` and `x-shipengine-timestamp`; RSA-SHA256
(PKCS#1 v1.5), base64, over `<timestamp>.<raw body>`, the key being the JWKS entry with that kid.
Missing headers answer 404, a timestamp more than `tolerance` off 400, a bad signature 401, keys
we cannot fetch 503. The payload's `data` is the `tracking_information` a poll returns, so it is
parsed by the poll's own parser.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from shiptrackd.errors import InvalidResponseError
from shiptrackd.providers.shipengine_parse import parse_tracking_data
from shiptrackd.push.jwks import JwksCache
from shiptrackd.push.verify import (
    PushedUpdate,
    PushRejectedError,
    VerifiedPush,
    header,
    in_window,
    missing_headers,
    parse_timestamp,
    verify_rsa_sha256,
)

KEY_ID_HEADER = "x-shipengine-rsa-sha256-key-id"
SIGNATURE_HEADER = "x-shipengine-rsa-sha256-signature"
TIMESTAMP_HEADER = "x-shipengine-timestamp"
RESOURCE_TYPE = "API_TRACK"


class ShipEnginePush:
    """Verifies and parses ShipEngine's `track` webhooks; `now` is the daemon's clock."""

    name = "shipengine"

    def __init__(self, jwks: JwksCache, *, tolerance_s: float, now: Callable[[], datetime]) -> None:
        self.jwks = jwks
        self.tolerance_s = tolerance_s
        self._now = now

    async def verify_push(self, headers: Mapping[str, str], raw_body: bytes) -> VerifiedPush:
        """Check the three headers, the timestamp window and the signature, cheapest first."""
        values = {name: header(headers, name) for name in (KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER)}
        absent = [name for name, value in values.items() if not value]
        if absent:
            raise missing_headers(absent)
        kid, signature, stamp = values[KEY_ID_HEADER], values[SIGNATURE_HEADER], values[TIMESTAMP_HEADER]
        assert kid is not None and signature is not None and stamp is not None
        try:
            at = parse_timestamp(stamp)
        except (ValueError, OverflowError, OSError):
            raise PushRejectedError(
                400, "bad_timestamp", f"{TIMESTAMP_HEADER} is not an ISO-8601 time", outcome="stale"
            ) from None
        if not in_window(at, self._now(), self.tolerance_s):
            raise PushRejectedError(
                400, "stale_timestamp", f"{TIMESTAMP_HEADER} is more than {self.tolerance_s:g}s off", outcome="stale"
            )
        key = await self.jwks.key_for(kid)
        if not verify_rsa_sha256(key, stamp.encode() + b"." + raw_body, signature):
            raise PushRejectedError(
                401, "bad_signature", "the signature does not match the body", outcome="bad_signature"
            )
        return VerifiedPush(replay_key=f"shipengine:{signature.strip()}")

    def parse_push(self, raw_body: bytes) -> list[PushedUpdate]:
        """The parcel an `API_TRACK` push is about, as the poll parser reads it; other resource types carry none."""
        try:
            payload = json.loads(raw_body)
        except (ValueError, UnicodeDecodeError):
            raise _malformed("body: not valid JSON") from None
        if not isinstance(payload, dict):
            raise _malformed("body: expected a JSON object")
        if payload.get("resource_type") != RESOURCE_TYPE:
            return []  # another event's webhook pointed here: acknowledged, nothing to track
        data = payload.get("data")
        if not isinstance(data, dict):
            raise _malformed("data: expected the tracking object")
        query = parse_qs(urlsplit(str(payload.get("resource_url") or "")).query)
        number = data.get("tracking_number") or (query.get("tracking_number") or [""])[0]
        carrier = data.get("carrier_code") or (query.get("carrier_code") or [""])[0]
        if not isinstance(number, str) or not number.strip():
            raise _malformed("data.tracking_number: missing")
        carrier = carrier.strip() if isinstance(carrier, str) else ""
        try:
            info = parse_tracking_data(data, carrier_code=carrier, tracking_number=number.strip())
        except InvalidResponseError as exc:
            raise _malformed(f"data.{exc.message}") from None
        return [PushedUpdate(carrier, info.tracking_number, info)]


def _malformed(message: str) -> PushRejectedError:
    return PushRejectedError(400, "malformed", message[:300], outcome="malformed")
