"""The console's pure parts: folding events into state, and the paged window behind the shipments list."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shiptrackd.wire.answers import Shipment
from tui.daemon import decode_event
from tui.events import ConsoleEvent, RawEvent
from tui.format import countdown, describe_event, duration, fit, level_of
from tui.state import ConsoleState
from tui.widgets.pages import PagedRows
from tui.widgets.shipment_list import layout_columns

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def decode(event: Any) -> ConsoleEvent:
    """An event as the stream carries it: one JSON line."""
    return decode_event(json.dumps(event))


def shipment(i: int) -> Shipment:
    return Shipment(
        id=f"ship_{i:08d}",
        carrier_code="ups",
        tracking_number=f"1Z{i}",
        reference="",
        status_code=None,
        status_detail_code=None,
        status_description=None,
        exception_description=None,
        estimated_delivery_at=None,
        actual_delivery_at=None,
        last_synced_at=None,
        status_changed_at=None,
        next_sync_at=NOW,
        schedule_reason="new",
        consecutive_failures=0,
        last_error="",
        last_error_kind="",
        active=True,
        created_at=NOW,
        updated_at=NOW,
        provider="",
        provider_ref="",
        provider_status="",
        provider_sub_status="",
        subscribed_at=None,
        last_push_at=None,
        push_count=0,
        push_missed=False,
    )


def page(start: int, n: int) -> list[Shipment]:
    return [shipment(i) for i in range(start, start + n)]


def test_pages_walk_by_cursor_and_keep_only_a_window() -> None:
    """Page k is fetched with page k-1's cursor; old pages are dropped but their cursors kept."""
    rows = PagedRows(page_size=10, keep_pages=3)
    assert rows.next_fetch([0]) == (0, None)
    rows.add_page(0, page(0, 10), "ship_00000009")
    assert rows.next_fetch([5]) == (1, "ship_00000009")  # page 5 needs the walk to go on first
    for k in range(1, 6):
        rows.add_page(k, page(10 * k, 10), f"ship_{10 * k + 9:08d}")
    assert len(rows.pages) == 3 and 0 not in rows.pages
    assert rows.next_fetch([0]) == (0, None)  # a dropped page is re-read directly
    assert rows.row_count == 61  # 60 known and a "loading" row
    rows.add_page(6, page(60, 4), None)
    assert rows.complete and rows.total == 64 and rows.row_count == 64
    assert rows.next_fetch([7, 8]) is None
    last = rows.row(63)
    assert last is not None and last.id == "ship_00000063" and rows.row(64) is None


def test_pages_estimate_sizes_the_list_before_the_walk() -> None:
    """With a count from the daemon's stats, the scrollbar is right from the first page."""
    rows = PagedRows(page_size=10, estimate=1000)
    rows.add_page(0, page(0, 10), "ship_00000009")
    assert rows.row_count == 1000
    rows.more_may_exist()  # not complete yet: nothing to do
    assert rows.row_count == 1000


def test_new_shipments_reopen_a_complete_list() -> None:
    """Added shipments sort last, so a complete list re-reads its last page."""
    rows = PagedRows(page_size=10)
    rows.add_page(0, page(0, 4), None)
    assert rows.complete
    rows.more_may_exist()
    assert not rows.complete and rows.next_fetch([0]) == (0, None)


@pytest.mark.parametrize("width", [60, 78, 100, 118, 160, 240])
def test_columns_fit_the_width(width: int) -> None:
    """The list's columns never add up to more than the width they are given."""
    columns = layout_columns(width)
    assert sum(w + 1 for _, _, w in columns) <= width + 1
    assert [key for key, _, _ in columns][:2] == ["mark", "id"]


@pytest.mark.parametrize(
    "event",
    [
        {"seq": 1, "type": "sync.progress"},  # no run data at all
        {"seq": 2, "type": "loop.changed", "loop": None},
        {"seq": 3, "type": "loop.changed"},
        {"seq": 4, "type": "sync.finished", "run": "not a dict"},
        {"seq": 5, "type": "shipments.added", "count": "many"},
        {"seq": 6, "type": "health.report", "report": [1, 2]},
        {"seq": 7, "type": "brand.new.thing", "x": 1},
        {"type": None},
        "not even a dict",
    ],
)
def test_odd_events_are_kept_raw_and_change_nothing(event: Any) -> None:
    """An unexpected or malformed event decodes as a RawEvent: logged, never folded, never fatal."""
    state = ConsoleState()
    decoded = decode(event)
    assert isinstance(decoded, RawEvent)
    assert state.apply_event(decoded, NOW) == {"events"}
    assert list(state.events) == [decoded] and state.loops == {} and state.health is None
    assert isinstance(describe_event(decoded), str)
    assert isinstance(decode_event("{not json"), RawEvent)


def test_sync_events_fold_into_progress_and_runs() -> None:
    """sync.started/progress/finished move the running sync and prepend the finished run."""
    state = ConsoleState()
    at = "2025-03-14T12:00:00Z"
    later = "2025-03-14T12:00:10Z"
    counts = dict.fromkeys(("updated", "unchanged", "failed", "skipped", "api_calls", "retries", "rate_limited"), 0)
    started = {"seq": 1, "type": "sync.started", "run_id": 7, "trigger": "manual", "planned": 100, "at": at}
    progress = {
        **{"seq": 2, "type": "sync.progress", "run_id": 7, "trigger": "manual", "started_at": at, "at": later},
        **{"planned": 100, "done": 50, "selected": 100, **counts, "unknown_ids": [], "stop_reason": ""},
    }
    run = {"id": 7, "trigger": "manual", "started_at": at, "finished_at": later, "selected": 100, "done": 100}
    run = {**run, **counts, "outcome": "ok", "stop_reason": "", "unknown_ids": []}
    run.pop("done")
    assert state.apply_event(decode(started), NOW) == {"events", "sync"}
    topics = state.apply_event(decode(progress), NOW)
    assert "sync" in topics and state.sync is not None
    assert state.sync.done == 50 and state.sync_rate == pytest.approx(5.0)
    state.apply_event(decode({"seq": 3, "type": "sync.finished", "run": run, "at": later}), NOW)
    assert state.sync is None and state.runs[0].id == 7 and state.runs[0].outcome == "ok" and state.last_seq == 3


def test_heartbeats_advance_the_sequence_only() -> None:
    """Heartbeats carry the resume point but are not kept as events."""
    state = ConsoleState()
    assert state.apply_event(decode({"seq": 9, "type": "heartbeat"}), NOW) == set()
    assert state.last_seq == 9 and not state.events


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (65, "1m5s"), (3700, "1h1m"), (90000, "1d1h"), (300.7, "5m"), (None, "—")]
)
def test_durations(seconds: float | None, text: str) -> None:
    """Durations in the one grammar of shiptrackd.units, cut to two units for a screen."""
    assert duration(seconds) == text


def test_countdown_and_fit() -> None:
    """Countdowns say 'due' once passed; fit cuts with an ellipsis and pads."""
    assert countdown((NOW + timedelta(seconds=90)).isoformat(), NOW) == "in 1m30s"
    assert countdown((NOW - timedelta(seconds=5)).isoformat(), NOW) == "due"
    assert countdown(None, NOW) == "—"
    assert fit("abcdef", 4) == "abc…" and fit("ab", 4) == "ab  "
    assert level_of("degraded") == "warning" and level_of(None) == "unknown"
    assert level_of("resolved") == "ok"  # an alert's all-clear notice: ✔, not ?


def test_describe_event_covers_unknown_types() -> None:
    """Every event gets a one-line description, known or not."""
    changed = {"seq": 1, "type": "shipment.status_changed", "at": "2025-03-14T12:00:00Z", "id": "s", "run_id": 1}
    assert "→ DE" in describe_event(decode({**changed, "old": "IT", "new": "DE"}))
    pushed = {k: v for k, v in changed.items() if k != "run_id"} | {"old": "IT", "new": "DE", "via": "push"}
    assert describe_event(decode(pushed)) == "s: IT → DE · by push"
    elsewhere = describe_event(decode({**changed, "old": "AC", "new": "IT", "origin": "vm2:4002:a1b2"}))
    assert elsewhere == "s: AC → IT · on vm2:4002"  # a change another cluster member wrote
    assert describe_event(decode({"type": "x.y", "seq": 1, "foo": "bar"})) == "foo=bar"
