"""
Bounded fuzzing of the EasyPost and AfterShip push and answer parsers: whatever the bytes, the only error is
InvalidResponseError (the receiver's 4xx), never a crash that would become a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiptrackd.errors import InvalidResponseError
from shiptrackd.providers import aftership_parse, aftership_push, easypost_parse, easypost_push

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
# Objects shaped like the real ones, with any value in any documented field: the parsers' type checks get exercised.
fields = st.sampled_from(
    [
        "id", "description", "result", "tracking_code", "status", "status_detail", "tracking_details", "datetime",
        "tracking_location", "carrier", "est_delivery_date", "event_id", "event", "ts", "msg", "tracking_number",
        "tag", "subtag", "checkpoints", "checkpoint_time", "hash", "slug", "courier_estimated_delivery_date",
        "meta", "data", "trackings", "has_more", "trackers",
    ]
)  # fmt: skip
shaped = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(fields, children, max_size=8),
    max_leaves=40,
)
PARSERS: list[Callable[[bytes], object]] = [
    easypost_push.parse_event,
    aftership_push.parse_event,
    easypost_parse.parse_tracker_body,
    lambda body: easypost_parse.parse_tracker_list(body),
    aftership_parse.parse_tracking_body,
]


def parse_all(body: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(body)
        except InvalidResponseError:
            pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.one_of(json_values, shaped))
def test_any_json_is_parsed_or_refused(value: Any) -> None:
    """Any JSON value, shaped like the providers' objects or not, parses or raises InvalidResponseError."""
    parse_all(json.dumps(value).encode())


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused(body: bytes) -> None:
    """Arbitrary bytes (not JSON, bad UTF-8) are refused with InvalidResponseError."""
    parse_all(body)


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_json_is_refused(depth: int) -> None:
    """JSON nested past the interpreter's stack is refused, not a RecursionError (a 500)."""
    parse_all(b"[" * depth + b"]" * depth)
    parse_all(b'{"msg":' * depth + b"1" + b"}" * depth)
