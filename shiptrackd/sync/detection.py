"""
Carrier detection, the pure part: which provider account detects a shipment added without a
carrier, and what `why` says about a shipment's carrier. No I/O; the engine and service act on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the row type only: this module stays pure
    from ..store.rows import Shipment


class NoDetectorError(ValueError):
    """No configured account can detect this shipment's carrier: the operator must name one."""


def detector_for(accounts: Sequence[tuple[str, bool]], asked: str = "") -> str:
    """The account that detects a carrier-less shipment's carrier.

    `accounts` is (name, detects_carrier) for each account, the default first. The account asked
    for must detect; without one the default does if it can, else the first account that can.
    """
    detecting = [name for name, detects in accounts if detects]
    if asked:
        if asked in detecting:
            return asked
        raise NoDetectorError(
            f"carrier_code is required: provider {asked!r} cannot detect carriers"
            + (f" (these can: {', '.join(detecting)})" if detecting else "")
        )
    if not detecting:
        names = ", ".join(name for name, _ in accounts)
        raise NoDetectorError(f"carrier_code is required: no configured provider detects carriers ({names})")
    return detecting[0]


def carrier_lines(shipment: Shipment) -> list[str]:
    """The carrier part of `why`: how the carrier is known, and what to do when it is not."""
    carrier = shipment.carrier_code
    source = shipment.carrier_source or "given"
    detected = shipment.detected_carrier
    provider = shipment.provider or "its provider"
    if source == "pending":
        if detected:
            return [
                f"carrier: {provider} detected {detected}, but another shipment already tracks {detected}"
                f" {shipment.tracking_number}: remove one, or set this one's carrier",
            ]
        return [
            f"carrier: not known yet: {provider} detects it when it registers the number at the next sync",
            "`shiptrackctl shipments set-carrier ID CARRIER` names it instead",
        ]
    if source == "detected":
        return [
            f"carrier: {carrier}, detected by {provider}",
            "a wrong guess? `shiptrackctl shipments set-carrier ID CARRIER` overrides it",
        ]
    if source == "set":
        was = f" ({detected} was detected)" if detected and detected != carrier else ""
        return [f"carrier: {carrier}, set by an operator{was}"]
    return [f"carrier: {carrier}"]
