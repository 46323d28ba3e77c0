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
    ("info", "stored_newest", "stale"),
    [
        (_info("UN"), None, False),  # a new shipment takes an eventless answer
        (_info("NY"), None, False),
        (_info("UN"), STORED, True),  # "not found" after real scans
        (_info("NY"), STORED, True),
        (_info("IT"), STORED, True),  # claims a scan it does not show
        (_info("EX"), STORED, False),  # an expiry or cancellation needs no scan
        (_info("DE"), STORED, False),  # a delivery from the carrier's summary
        (_info("AC", -1), STORED, True),  # an older history
        (_info("IT", -2, 0), STORED, False),  # the same newest scan: a duplicate, not older
        (_info("UN", 1), STORED, False),  # newer scans win, whatever their status
    ],
)
def test_which_answers_keep_the_stored_status(info: TrackingInfo, stored_newest: str | None, stale: bool) -> None:
    """Stale: an older history, or no events after stored ones unless the status needs none."""
    assert is_stale(info, stored_newest) is stale


def test_the_statuses_believed_without_events_are_real_status_codes() -> None:
    """A typo in EVENTLESS_BELIEVED would silently make every eventless answer stale."""
    assert EVENTLESS_BELIEVED <= set(STATUS_CODES)
