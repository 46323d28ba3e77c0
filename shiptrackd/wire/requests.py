"""The request bodies of the /v1 routes, as the OpenAPI document and the client describe them."""

from __future__ import annotations

import msgspec


class Body(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every request body."""


class NewShipmentBody(Body):
    carrier_code: str  # lowercase letters, digits and underscores, e.g. ups, dhl_express
    tracking_number: str  # 1-64 letters, digits and dashes
    reference: str = ""  # printable, at most 200 characters


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
