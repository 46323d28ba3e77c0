"""
17TRACK v2.2's vocabulary as data: statuses and sub-statuses mapped to ours, carrier ids, error
codes, the push signature. Shared by the provider and the sandbox so both speak one dialect.

Facts: reference/tracking-apis.md §4 and webhooks.md §1. Where the reference is silent the
choices are written here (and in the closing note): the status map itself (design aid §5,
refined per sub-status to ShipEngine's detail codes, which drive our cadence), the carrier
ids of 17TRACK's carrier list for the carriers we name, `getquota`'s field names, and the
quota-exhausted error code.
"""

from __future__ import annotations

import hashlib
import hmac

from shiptrackd.providers.base import StatusMap

KIND = "17track"
BATCH_SIZE = 40  # numbers per register/gettrackinfo/stoptrack request (-18010014 above it)

# Main status -> (our status code, our detail code).
STATUSES: dict[str, tuple[str, str]] = {
    "NotFound": ("UN", ""),
    "InfoReceived": ("NY", "SHIPMENT_CREATED"),
    "InTransit": ("IT", "IN_TRANSIT"),
    "Expired": ("EX", "TRACKING_EXPIRED"),
    "AvailableForPickup": ("SP", "AWAITING_COLLECTION_FROM_PICKUP_POINT"),
    "OutForDelivery": ("IT", "OUT_FOR_DELIVERY"),
    "DeliveryFailure": ("AT", "ATTEMPTED_DELIVERY"),
    "Delivered": ("DE", "DELIVERED"),
    "Exception": ("EX", "UNSPECIFIED_EXCEPTION"),
}
# Sub-statuses whose meaning is finer than their main status's.
SUB_STATUSES: dict[str, tuple[str, str]] = {
    "NotFound_Other": ("UN", ""),
    "NotFound_InvalidCode": ("UN", ""),
    "InfoReceived": ("NY", "SHIPMENT_CREATED"),
    "InTransit_PickedUp": ("AC", "PICKED_UP"),
    "InTransit_Other": ("IT", "IN_TRANSIT"),
    "InTransit_Departure": ("IT", "HUB_SCAN_OUT"),
    "InTransit_Arrival": ("IT", "HUB_SCAN_IN"),
    "InTransit_CustomsProcessing": ("IT", "CUSTOMS_PROCESSING"),
    "InTransit_CustomsReleased": ("IT", "CUSTOMS_CLEARED"),
    "InTransit_CustomsRequiringInformation": ("IT", "HELD_BY_CUSTOMS"),
    "Expired_Other": ("EX", "TRACKING_EXPIRED"),
    "AvailableForPickup_Other": ("SP", "AWAITING_COLLECTION_FROM_PICKUP_POINT"),
    "OutForDelivery_Other": ("IT", "OUT_FOR_DELIVERY"),
    "DeliveryFailure_Other": ("AT", "ATTEMPTED_DELIVERY"),
    "DeliveryFailure_NoBody": ("AT", "CUSTOMER_CARDED"),
    "DeliveryFailure_Security": ("AT", "CUSTOMER_IDENTIFICATION_FAILED"),
    "DeliveryFailure_Rejected": ("AT", "REFUSED_BY_CUSTOMER"),
    "DeliveryFailure_InvalidAddress": ("AT", "ADDRESS_QUERY"),
    "Delivered_Other": ("DE", "DELIVERED"),
    "Exception_Other": ("EX", "UNSPECIFIED_EXCEPTION"),
    "Exception_Returning": ("EX", "RETURN_TO_SENDER"),
    "Exception_Returned": ("EX", "UNDELIVERABLE_RETURNED_TO_SENDER"),
    "Exception_NoBody": ("EX", "NOT_DELIVERED"),
    "Exception_Security": ("EX", "HELD_BY_CUSTOMS"),
    "Exception_Damage": ("EX", "PARCEL_DAMAGED"),
    "Exception_Rejected": ("EX", "REFUSED_BY_CUSTOMER"),
    "Exception_Delayed": ("EX", "CARRIER_DELAYS"),
    "Exception_Lost": ("EX", "PARCEL_LOST"),
    "Exception_Destroyed": ("EX", "PARCEL_DISPOSED"),
    "Exception_Cancel": ("EX", "CANCELLED"),
}


def status_map() -> StatusMap:
    """A fresh map (each provider account counts its own unknown words)."""
    return StatusMap(STATUSES, SUB_STATUSES)


# Our carrier codes -> 17TRACK's numeric carrier ids (its carrier list); others are auto-detected.
CARRIER_IDS: dict[str, int] = {
    "dhl_express": 100001,
    "ups": 100002,
    "fedex": 100003,
    "usps": 21051,
    "stamps_com": 21051,
    "canada_post": 3041,
    "china_post": 3011,
    "royal_mail": 11031,
    "australia_post": 1151,
}
CARRIER_CODES: dict[int, str] = {number: code for code, number in CARRIER_IDS.items() if code != "stamps_com"}


def carrier_id(carrier_code: str) -> int | None:
    """17TRACK's id for our carrier code: a known name, or the id itself written as digits."""
    if carrier_code.isdigit():
        return int(carrier_code)
    return CARRIER_IDS.get(carrier_code)


def carrier_code(carrier: object, fallback: str = "") -> str:
    """Our carrier code for 17TRACK's id (its digits when we have no name for it)."""
    if isinstance(carrier, int) and not isinstance(carrier, bool) and carrier > 0:
        return CARRIER_CODES.get(carrier, str(carrier))
    return fallback


# Error codes (reference §4; the quota one is assumed, with "quota" in the message as a second sign).
ERR_IP_NOT_WHITELISTED = -18010001
ERR_INVALID_KEY = -18010002
ERR_ACCOUNT_DISABLED = -18010004
ERR_BAD_FORMAT = -18010012
ERR_INVALID_DATA = -18010013
ERR_TOO_MANY = -18010014
ERR_ALREADY_REGISTERED = -18019901
ERR_NOT_REGISTERED = -18019902
ERR_CARRIER_NOT_DETECTED = -18019903
ERR_QUOTA_EXHAUSTED = -18019908
AUTH_ERRORS = frozenset({ERR_IP_NOT_WHITELISTED, ERR_INVALID_KEY, ERR_ACCOUNT_DISABLED})

EVENT_UPDATED = "TRACKING_UPDATED"
EVENT_STOPPED = "TRACKING_STOPPED"
SIGN_HEADER = "sign"


def push_sign(body: bytes, key: str) -> str:
    """17TRACK's push signature: lowercase hex SHA-256 of the raw body + "/" + key (a plain hash, not an HMAC)."""
    return hashlib.sha256(body + b"/" + key.encode()).hexdigest()


def sign_matches(body: bytes, key: str, sign: str) -> bool:
    """Constant-time check of a `sign` header against the body and key."""
    return hmac.compare_digest(push_sign(body, key), sign.strip().lower())
