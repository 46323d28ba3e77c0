"""
The sandbox's lifecycles are pure: same inputs, same body, and each scenario moves as documented.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.sandbox import sample_shipments
from shiptrackd.sandbox.lifecycle import SCENARIOS, Plan, plan_for, timeline, tracking_body
from shiptrackd.wire.names import STATUS_CODES

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def statuses_over(carrier_code: str, number: str, hours: int = 200, step: int = 1) -> list[str]:
    """The status at each hour since first sight, with consecutive repeats collapsed."""
    seen: list[str] = []
    for h in range(0, hours, step):
        status = tracking_body(carrier_code, number, first_seen_at=T0, now=T0 + timedelta(hours=h))["status_code"]
        if not seen or seen[-1] != status:
            seen.append(status)
    return seen


def test_same_number_same_body() -> None:
    """A number's body depends only on its inputs, so reruns and restarts agree."""
    a = tracking_body("ups", "1Z4W7A890000000001", first_seen_at=T0, now=T0 + timedelta(hours=30))
    b = tracking_body("ups", "1Z4W7A890000000001", first_seen_at=T0, now=T0 + timedelta(hours=30))
    assert a == b


def test_hash_spreads_numbers_over_every_scenario() -> None:
    """Unpinned numbers land in every scenario, delivered being the most common."""
    counts = Counter(plan_for("usps", f"9400{i:018d}").scenario for i in range(2000))
    assert set(counts) == set(SCENARIOS)
    assert counts.most_common(1)[0][0] == "delivered"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("1ZLCNORMAL0001", ["NY", "AC", "IT", "DE"]),
        ("1ZLCEXCEPTION01", ["NY", "AC", "IT", "EX", "IT", "DE"]),
        ("1ZLCATTEMPT0001", ["NY", "AC", "IT", "AT", "IT", "DE"]),
        ("1ZLCPICKUP00001", ["NY", "AC", "IT", "SP", "DE"]),
        ("1ZLCSTUCK000001", ["NY"]),
        ("1ZLCLOST0000001", ["NY", "AC", "IT", "EX"]),
    ],
)
def test_scenario_progresses_as_documented(number: str, expected: list[str]) -> None:
    """Each pinned scenario walks through its documented statuses over a few simulated days."""
    assert statuses_over("ups", number) == expected


@pytest.mark.parametrize(
    ("number", "status"),
    [("DELIVERED1", "DE"), ("INTRANSIT1", "IT"), ("EXCEPTION1", "EX"), ("ATTEMPTED1", "AT"), ("PICKUP1", "SP"),
     ("NOTYET1", "NY"), ("LOST1", "EX")],
)  # fmt: skip
def test_frozen_pins_hold_one_status_with_a_stable_history(number: str, status: str) -> None:
    """A frozen pin answers the same status and the same event times on every poll."""
    first = tracking_body("fedex", number, first_seen_at=T0, now=T0)
    later = tracking_body("fedex", number, first_seen_at=T0, now=T0 + timedelta(days=30))
    assert first["status_code"] == later["status_code"] == status
    assert first["events"] == later["events"]


def test_body_has_shipengine_quirks() -> None:
    """Bodies carry ShipEngine's quirks: newest-first events, zone-less local times, null and "" mixed."""
    body = tracking_body("stamps_com", "9400DELIVERED01", first_seen_at=T0, now=T0)
    assert body["carrier_code"] == "usps"  # a stamps_com query is answered as usps
    assert isinstance(body["carrier_id"], int)
    assert body["status_code"] == "DE" and body["actual_delivery_date"].endswith("Z")
    assert body["ship_date"] and body["estimated_delivery_date"] and body["exception_description"] is None
    times = [event["occurred_at"] for event in body["events"]]
    assert times == sorted(times, reverse=True)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["carrier_occurred_at"]) for e in body["events"])
    label = body["events"][-1]
    assert label["status_code"] == "" and label["city_locality"] is None and "status_detail_code" not in label
    values = [v for event in body["events"] for v in event.values()]
    assert None in values and "" in values


def test_exception_body_describes_the_exception() -> None:
    """An EX body sets exception_description; a not-yet-seen one has no dates and no events."""
    ex = tracking_body("ups", "1ZEXCEPTION1", first_seen_at=T0, now=T0)
    assert ex["status_code"] == "EX" and ex["exception_description"]
    ny = tracking_body("ups", "1ZNOTYET1", first_seen_at=T0, now=T0)
    assert ny["events"] == [] and ny["ship_date"] is None and ny["estimated_delivery_date"] is None


def test_timeline_is_ordered_and_jittered_per_number() -> None:
    """Scans are in time order, and two numbers of one scenario do not move in lock-step."""
    a = [at for at, _ in timeline("ups", "1ZLCNORMAL0001")]
    b = [at for at, _ in timeline("ups", "1ZLCNORMAL0002")]
    assert a == sorted(a) and b == sorted(b) and a != b


def test_progress_pins_win_over_frozen_ones() -> None:
    """LCEXCEPTION progresses even though it contains the frozen token EXCEPTION."""
    assert plan_for("ups", "1ZLCEXCEPTION") == Plan("exception")
    assert plan_for("ups", "1ZEXCEPTION") == Plan("exception", "EX")


def test_sample_shipments_cover_everything_plausibly() -> None:
    """The demo list is deterministic, unique, covers every scenario and the promised faults."""
    rows = sample_shipments()
    assert rows == sample_shipments() and len(rows) == 50
    numbers = [row["tracking_number"] for row in rows]
    assert len(set(numbers)) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9-]{1,64}", n) for n in numbers)
    assert {plan_for(r["carrier_code"], r["tracking_number"]).scenario for r in rows} == set(SCENARIOS)
    assert sum("NOTFOUND" in n for n in numbers) == 2
    assert sum("FLAKY" in n for n in numbers) == 1 and sum("BADSCHEMA" in n for n in numbers) == 1
    for row in rows:
        prefix = {"ups": "1Z", "fedex": "7", "usps": "94", "stamps_com": "94"}[row["carrier_code"]]
        assert row["tracking_number"].startswith(prefix)
    assert len(sample_shipments(5)) == 5 and sample_shipments(0) == []


def test_every_status_code_is_reachable() -> None:
    """Across the scenarios the sandbox produces every status code the daemon handles except UN."""
    seen = {s for number in ("LCNORMAL", "LCEXCEPTION", "LCATTEMPT", "LCPICKUP") for s in statuses_over("ups", number)}
    assert seen == set(STATUS_CODES) - {"UN"}
