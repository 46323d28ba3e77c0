"""
EasyPost webhooks: check `X-Hmac-Signature`, then read the Event it signs.

The signature (reference/webhooks.md §1, EasyPost's own SDK `validate_webhook`) is
`hmac-sha256-hex=` + lowercase hex HMAC-SHA256 of the raw body, keyed with the UTF-8 bytes
of the webhook secret after Unicode NFKD normalisation. The header is looked up
case-insensitively (HTTP/2 and some proxies lower-case it). Events are delivered at least
once and carry no signed timestamp, so the receiver deduplicates on the Event `id` (`evt_…`).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass

from shiptrackd.errors import InvalidResponseError
from shiptrackd.providers import json_fields as jf
from shiptrackd.providers.easypost_parse import Tracker, parse_tracker
from shiptrackd.providers.http_headers import Headers, header

SIGNATURE_HEADER = "X-Hmac-Signature"
SIGNATURE_PREFIX = "hmac-sha256-hex="
TRACKER_EVENTS = frozenset({"tracker.updated", "tracker.created"})


@dataclass(frozen=True)
class EasyPostEvent:
    """A verified webhook: the Event id (the dedupe key), its description, and the Tracker if it has one."""

    id: str
    description: str
    mode: str
    tracker: Tracker | None


def signature(body: bytes, secret: str) -> str:
    """The header value EasyPost sends for *body* (the sandbox signs its pushes with this)."""
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(headers: Headers, body: bytes, secret: str) -> bool:
    """True only if the signature header is present and matches *body* under *secret* (constant time)."""
    if not secret:
        return False  # an unset secret verifies nothing rather than everything
    given = header(headers, SIGNATURE_HEADER)
    if given is None:
        return False
    given = given.strip()
    if not given.lower().startswith(SIGNATURE_PREFIX):
        return False
    given = SIGNATURE_PREFIX + given[len(SIGNATURE_PREFIX) :].lower()
    return hmac.compare_digest(given.encode("utf-8", "replace"), signature(body, secret).encode())


def parse_event(body: bytes) -> EasyPostEvent:
    """A verified Event body; raises InvalidResponseError naming the field that is wrong."""
    data = jf.load_object(body, status=400)
    event_id = jf.text(data, "id")
    if not event_id:
        raise InvalidResponseError("id: missing", status=400)
    description = jf.text(data, "description")
    tracker = None
    if description in TRACKER_EVENTS:
        result = jf.obj(data, "result")
        if jf.text(result, "object") not in ("", "Tracker"):
            raise InvalidResponseError(
                f"result.object: {jf.text(result, 'object')[:40]!r} is not a Tracker", status=400
            )
        tracker = parse_tracker(result, where="result")
    return EasyPostEvent(id=event_id, description=description, mode=jf.text(data, "mode"), tracker=tracker)
