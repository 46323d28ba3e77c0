"""`is_stale`, the rule by which an answer keeps the stored status (issue 10 item 3), as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.models import TrackingEvent, TrackingInfo
from shiptrackd.store.apply import EVENTLESS_BELIEVED, is_stale
from shiptrackd.store.db import to_db
from shiptrackd.wire.names import STATUS_CODES

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STORED = to_db(NOW)


def _info(status: str, *hours: float) -> TrackingInfo:
    events = tuple(TrackingEvent(NOW + timedelta(hours=h), "scan", status) for h in hours)
    return TrackingInfo("1Z", status, events=events)


@pytest.mark.parametrize(
    ("info", "stored_newest", "stored_status", "stale"),
    [
        (_info("UN"), None, None, False),  # a new shipment takes an eventless answer
        (_info("NY"), None, None, False),
        (_info("UN"), STORED, "IT", True),  # "not found" after real scans
        (_info("NY"), STORED, "IT", True),
        (_info("IT"), STORED, "IT", True),  # claims a scan it does not show
        (_info("EX"), STORED, "IT", False),  # an expiry or cancellation needs no scan
        (_info("DE"), STORED, "IT", False),  # a delivery from the carrier's summary
        (_info("AC", -1), STORED, "IT", True),  # an older history
        (_info("IT", -2, 0), STORED, "IT", False),  # the same newest scan: a duplicate, not older
        (_info("UN", 1), STORED, "IT", False),  # newer scans win, whatever their status
        (_info("EX"), STORED, "DE", True),  # "tracking expired" after a delivery: bookkeeping, DE stays
        (_info("EX"), None, "DE", True),  # ...also after a delivery stated without scans
        (_info("EX", -2, 0), STORED, "DE", True),  # the delivered history, now marked expired
        (_info("EX", 0, 1), STORED, "DE", False),  # a newer scan after the delivery: returned, damaged
        (_info("EX", 1), None, "DE", False),
        (_info("DE"), STORED, "DE", False),  # the confirming check's own answer
    ],
)
def test_which_answers_keep_the_stored_status(
    info: TrackingInfo, stored_newest: str | None, stored_status: str | None, stale: bool
) -> None:
    """Stale: an older history, no events after stored ones unless the status needs none, or an
    expiry after a delivery that brings no newer scan."""
    assert is_stale(info, stored_newest, stored_status) is stale


def test_the_statuses_believed_without_events_are_real_status_codes() -> None:
    """A typo in EVENTLESS_BELIEVED would silently make every eventless answer stale."""
    assert EVENTLESS_BELIEVED <= set(STATUS_CODES)
