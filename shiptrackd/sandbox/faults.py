"""
Which fault a tracking request gets, and the exact bytes ShipEngine would send for it.

A fault is forced by a substring of the upper-cased tracking number (first match in
MAGIC_SUBSTRINGS order wins), or drawn at random from the global `faults` rates with the
sandbox's seeded RNG, so a failing test can be replayed. Error bodies follow
reference/tracking-apis.md §1.9, including the malformed variants real clients must survive.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

# substring -> fault kind; the first match in this order wins.
MAGIC_SUBSTRINGS: dict[str, str] = {
    "NOTFOUND": "notfound",  # 404, standard error body
    "UNSUPPORTED": "unsupported",  # 400 tracking_not_supported (ShipEngine's "unknown number" variant)
    "REJECTED": "rejected",  # 400 invalid_field_value from the carrier: a permanent rejection
    "FORBIDDEN": "forbidden",  # 403 security/forbidden
    "LEAKKEY": "leakkey",  # 400 whose message echoes the request's API-Key (clients must scrub it)
    "FAIL500": "500",  # 500, standard error body
    "FAIL503": "503",  # 503, standard error body
    "ODD500": "odd500",  # 500 with the singular {"error": {"message": ...}} body
    "FLAKY": "flaky",  # 503 on the first 2 requests for that number, then normal
    "RATELIMIT": "429",  # 429 with Retry-After: 2, whatever the bucket says
    "RESET": "reset",  # TCP reset (SO_LINGER 0) instead of an answer
    "HANG": "hang",  # never answers; the connection closes when the client gives up
    "SLOW": "slow",  # answers normally after an extra SLOW_EXTRA_S
    "BADJSON": "badjson",  # 200 whose body is truncated JSON
    "BADSCHEMA": "badschema",  # 200 JSON with status_code "ZZ"
    "BADEVENTS": "badevents",  # 200 JSON whose events is an object, not a list
    "BADDATE": "baddate",  # 200 JSON whose newest event has an unparseable occurred_at
}
FLAKY_FAILURES = 2
SLOW_EXTRA_S = 2.0
FORCED_RETRY_AFTER_S = 2
# Kinds the global `faults` rates may name (flaky is per number by nature).
FAULT_KINDS = tuple(kind for kind in MAGIC_SUBSTRINGS.values() if kind != "flaky")


def forced_fault(tracking_number: str, request_count: int) -> str | None:
    """The fault a tracking number asks for on its `request_count`-th request (1-based), if any."""
    upper = tracking_number.upper()
    for token, kind in MAGIC_SUBSTRINGS.items():
        if token in upper:
            if kind == "flaky":
                return "503" if request_count <= FLAKY_FAILURES else None
            return kind
    return None


def random_fault(rng: random.Random, rates: Mapping[str, float]) -> str | None:
    """One draw against the cumulative rates: at most one fault per request."""
    if not rates:
        return None
    roll = rng.random()
    for kind, rate in rates.items():
        if roll < rate:
            return kind
        roll -= rate
    return None


def validate_rates(rates: Mapping[str, Any]) -> dict[str, float]:
    """Check a `faults` knob: known kinds, each 0..1, adding up to at most 1."""
    clean: dict[str, float] = {}
    for kind, rate in rates.items():
        if kind not in FAULT_KINDS:
            raise ValueError(f"faults: unknown kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"faults.{kind}: expected a probability between 0 and 1, got {rate!r}")
        if rate:
            clean[kind] = float(rate)
    if sum(clean.values()) > 1.0 + 1e-9:
        raise ValueError("faults: the rates add up to more than 1")
    return clean


def error_body(
    request_id: str,
    error_code: str,
    message: str,
    *,
    error_type: str = "validation",
    error_source: str = "shipengine",
    **extra: Any,
) -> bytes:
    """ShipEngine's standard error body; `extra` adds optional keys like field_name."""
    item = {"error_source": error_source, "error_type": error_type, "error_code": error_code, "message": message}
    return _dumps({"request_id": request_id, "errors": [{**item, **extra}]})


def fault_reply(
    kind: str, request_id: str, carrier_code: str, tracking_number: str, api_key: str = ""
) -> tuple[int, bytes] | None:
    """(status, body) for a fault answered with an error status; None for the others."""
    if kind == "leakkey":
        message = f"API key {api_key} is not enabled for carrier {carrier_code}."
        return 400, error_body(request_id, "carrier_not_connected", message, error_type="business_rules")
    if kind == "notfound":
        message = f"Tracking number {tracking_number} was not found for carrier {carrier_code}."
        return 404, error_body(request_id, "invalid_identifier", message, error_type="business_rules")
    if kind == "unsupported":
        message = f"Tracking is not supported for {tracking_number} with carrier {carrier_code}."
        return 400, error_body(
            request_id, "tracking_not_supported", message, error_type="business_rules", error_source="carrier"
        )
    if kind == "rejected":
        message = f"tracking_number is not valid for carrier {carrier_code}"
        return 400, error_body(
            request_id,
            "invalid_field_value",
            message,
            error_source="carrier",
            field_name="tracking_number",
            field_value=tracking_number,
        )
    if kind == "forbidden":
        return 403, error_body(request_id, "forbidden", "This API key may not track.", error_type="security")
    if kind == "500":
        return 500, error_body(request_id, "unspecified", "An unexpected error occurred.", error_type="system")
    if kind == "odd500":
        return 500, _dumps({"request_id": request_id, "error": {"message": "Internal Server Error"}})
    if kind == "503":
        return 503, error_body(
            request_id, "unspecified", "The service is temporarily unavailable.", error_type="system"
        )
    if kind == "429":
        return 429, rate_limited_body(request_id)
    return None


def rate_limited_body(request_id: str) -> bytes:
    return error_body(request_id, "rate_limit_exceeded", "You have exceeded the rate limit.", error_type="system")


def corrupt(kind: str, body: dict[str, Any]) -> bytes:
    """A 200 body broken the way `kind` says: not JSON, or JSON that breaks the schema."""
    if kind == "badjson":
        return _dumps(body)[:40]  # cut mid-object, like a proxy that dropped the connection
    if kind == "badschema":
        body["status_code"] = "ZZ"
    elif kind == "badevents":
        body["events"] = {str(i): event for i, event in enumerate(body["events"])}
    elif kind == "baddate":
        if not body["events"]:
            body["events"] = [{"description": "Shipper created a label", "status_code": ""}]
        body["events"][0]["occurred_at"] = "last Tuesday afternoon"
    return _dumps(body)


def _dumps(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
