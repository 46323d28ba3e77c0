"""The request bodies of the /v1 routes, as the OpenAPI document and the client describe them."""

from __future__ import annotations

from typing import Literal

import msgspec


class Body(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every request body."""


class NewShipmentBody(Body):
    tracking_number: str  # 1-64 letters, digits and dashes
    # Lowercase letters, digits and underscores, e.g. ups, dhl_express. Left out: a provider account
    # that detects carriers (AfterShip, 17TRACK, EasyPost) finds it; without one, 400 carrier_required.
    carrier_code: str = ""
    reference: str = ""  # printable, at most 200 characters
    provider: str = ""  # a [[providers]] account's name: tracked by it, whatever the carrier


class SetCarrierBody(Body):
    """POST /v1/shipments/{id}/carrier: an operator's carrier, overriding a wrong (detected) one."""

    carrier_code: str  # lowercase letters, digits and underscores


class NewShipmentsBody(Body):
    """POST /v1/shipments also takes one NewShipmentBody or a bare list of them."""

    shipments: list[NewShipmentBody]


class SyncBody(Body):
    force: bool = False  # every active shipment, due or not
    dry_run: bool = False  # say what would be synced, sync nothing
    shipments: list[str] | None = None  # only these shipment ids


class BackupBody(Body):
    path: str  # absolute, as the daemon sees it
    force: bool = False  # replace an existing file


class SilenceBody(Body):
    check: str  # a check name or "*"
    duration: str | float | None = None  # "2h", "1h 30m", or seconds
    until: str | None = None  # RFC 3339 with an offset; instead of duration
    comment: str = ""


class RetryDeadBody(Body):
    """POST /v1/deliveries/retry: every dead delivery again (only one endpoint's, if named)."""

    dead: Literal[True]  # required: an empty POST is refused, never read as "retry every dead delivery"
    endpoint: str | None = None  # an [[outbound]] endpoint's name; left out: every endpoint's dead deliveries


class ReplayBody(Body):
    """POST /v1/deliveries/replay: enqueue again, under new webhook-ids, what went to an endpoint since a time ago."""

    endpoint: str  # an [[outbound]] endpoint's name
    since: str  # "2h", "1h 30m", "3d": a positive duration of at most 90d
