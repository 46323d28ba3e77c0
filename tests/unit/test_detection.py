"""Carrier detection's pure rules: which account detects a carrier-less shipment, and what `why` says."""

from __future__ import annotations

import pytest
from row_samples import shipment as row

from shiptrackd.models import NewShipment
from shiptrackd.store.rows import Shipment
from shiptrackd.sync.detection import NoDetectorError, carrier_lines, detector_for

ACCOUNTS = [("domestic", False), ("as", True), ("t17", True)]


@pytest.mark.parametrize(
    ("accounts", "asked", "expected"),
    [
        (ACCOUNTS, "", "as"),  # the default cannot: the first that can
        ([("t17", True), ("as", True)], "", "t17"),  # the default can: the default
        (ACCOUNTS, "t17", "t17"),  # the one asked for, when it can
    ],
)
def test_the_detecting_account(accounts: list[tuple[str, bool]], asked: str, expected: str) -> None:
    assert detector_for(accounts, asked) == expected


@pytest.mark.parametrize(
    ("accounts", "asked", "message"),
    [
        (ACCOUNTS, "domestic", "provider 'domestic' cannot detect carriers (these can: as, t17)"),
        ([("domestic", False)], "", "no configured provider detects carriers (domestic)"),
        ([("domestic", False)], "domestic", "provider 'domestic' cannot detect carriers"),
    ],
)
def test_no_account_detects(accounts: list[tuple[str, bool]], asked: str, message: str) -> None:
    with pytest.raises(NoDetectorError) as refused:
        detector_for(accounts, asked)
    assert str(refused.value) == f"carrier_code is required: {message}"


@pytest.mark.parametrize(
    ("shipment", "first_line"),
    [
        (row(carrier_code="ups"), "carrier: ups"),
        (row(carrier_code="", carrier_source="pending", provider="as"), "carrier: not known yet: as detects"),
        (row(carrier_code="ups", carrier_source="detected", provider="as"), "carrier: ups, detected by as"),
        (
            row(carrier_code="fedex", carrier_source="set", detected_carrier="ups"),
            "carrier: fedex, set by an operator (ups was detected)",
        ),
        (
            row(carrier_code="", carrier_source="pending", detected_carrier="ups", tracking_number="1Z9"),
            "carrier: its provider detected ups, but another shipment already tracks ups 1Z9",
        ),
    ],
)
def test_why_says_how_the_carrier_is_known(shipment: Shipment, first_line: str) -> None:
    assert carrier_lines(shipment)[0].startswith(first_line)


def test_a_new_shipment_may_leave_its_carrier_out_but_not_give_a_bad_one() -> None:
    assert NewShipment.parse({"tracking_number": "1Z9"}).carrier_code == ""
    assert NewShipment.parse({"tracking_number": "1Z9", "carrier_code": None}).carrier_code == ""
    with pytest.raises(ValueError, match="must be lowercase"):
        NewShipment.parse({"tracking_number": "1Z9", "carrier_code": "UPS"})
    with pytest.raises(ValueError, match="must be a string"):
        NewShipment.parse({"tracking_number": "1Z9", "carrier_code": 7})
