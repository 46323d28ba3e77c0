"""shiptrackctl health's monitoring-plugin output: perfdata syntax, one clean line, the regex of operations.md."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from shiptrackd.ctl.health import nagios_lines, perf_item, reason_of
from shiptrackd.health.rules import build_report, judge_recent_sync, judge_stale, judge_store
from shiptrackd.wire.answers import Check, HealthReport, Perf, to_answer

PLUGIN_LINE = re.compile(r"^SHIPTRACKD (OK|WARNING|CRITICAL|UNKNOWN): .+ \| ('[^']+'|\S+)=\S+( ('[^']+'|\S+)=\S+)*$")
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("perf", "text"),
    [
        ({"label": "last_sync_age", "value": 412, "unit": "s", "warn": "900", "crit": "3600", "min": 0}, None),
        ({"label": "stale", "value": 37, "warn": "10", "crit": "100", "min": 0, "max": None}, "'stale'=37;10;100;0"),
        ({"label": "active_shipments", "value": 1204, "min": 0}, "'active_shipments'=1204;;;0"),
        ({"label": "api_latency", "value": 0.04132, "unit": "s", "warn": "5", "min": 0}, "'api_latency'=0.0413s;5;;0"),
        ({"label": "it's", "value": 1.0, "min": None}, "'it''s'=1"),
        (
            {"label": "store_free", "value": 8.5e10, "unit": "B", "warn": "2e10:", "min": 0, "max": 2.7e11},
            "'store_free'=85000000000B;2e10:;;0;270000000000",
        ),
    ],
)
def test_perfdata_items(perf: dict[str, Any], text: str | None) -> None:
    """'label'=value[unit];warn;crit;min;max, trailing empty fields dropped, quotes doubled, no exponents."""
    assert perf_item(perf_of(perf)) == (text or "'last_sync_age'=412s;900;3600;0")


def perf_of(d: dict[str, Any]) -> Perf:
    """A perf datum as the wire sends it, the fields a table row leaves out at their empty values."""
    fields = {"unit": "", "warn": "", "crit": "", "min": None, "max": None, **d}
    return Perf(**fields)


def test_plugin_line_matches_the_operations_regex() -> None:
    """A warning report renders as one line the monitoring-plugin regex accepts, worst check first."""
    checks = [
        judge_recent_sync(datetime(2026, 1, 5, 11, 53, 8, tzinfo=UTC), now=NOW, started_at=NOW, warning_s=900,
                          critical_s=3600),
        judge_stale(37, 1204, stale_after_s=36 * 3600, warning=10, critical=100),
        judge_store(write_error="", write_s=0.002, quick_check="ok", quick_check_age_s=5, free_bytes=80 * 10**9,
                    total_bytes=250 * 10**9, size_bytes=10**7, free_warning="10%", free_critical="5%"),
    ]  # fmt: skip
    [line] = nagios_lines(to_answer(build_report(checks, at=NOW, host="vm", trigger="schedule"), HealthReport))
    assert PLUGIN_LINE.match(line), line
    assert line.startswith(
        "SHIPTRACKD WARNING: stale_shipments: 37 of 1204 active shipments not updated for over 1d12h | "
        "'last_sync_age'=412s;900;3600;0 'stale_shipments'=37;10;100;0 'active_shipments'=1204;;;0 "
        "'store_free'=80000000000B;25000000000:;12500000000:;0;250000000000"
    )


def test_summary_with_a_pipe_or_newline_stays_one_line() -> None:
    """A '|' in a message would end the text early for Nagios: it becomes '/', newlines become spaces."""
    check = Check(
        name="api_connectivity",
        level="critical",
        message="502",
        value=None,
        unit="",
        warning=None,
        critical=None,
        lower_is_worse=False,
        perf=[perf_of({"label": "x", "value": 1})],
        details={},
        threshold="",
        value_text="",
    )
    report = HealthReport(
        at=NOW,
        level="critical",
        exit_code=2,
        summary="api: 502 | bad\ngateway",
        host="vm",
        version="0",
        trigger="schedule",
        checks=[check],
    )
    assert nagios_lines(report) == ["SHIPTRACKD CRITICAL: api: 502 / bad gateway | 'x'=1"]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("shiptrackd is not running at /x (socket missing).  systemctl status shiptrackd", "socket missing"),
        ("not running at /x (connection refused: stale socket).  systemctl ...", "connection refused: stale socket"),
        ("shiptrackd at /x did not answer in time; it may be starting", "shiptrackd at /x did not answer in time"),
    ],
)
def test_the_unreachable_line_names_the_reason(message: str, reason: str) -> None:
    """The client's message is cut down to its reason for the one-line CRITICAL output."""
    assert reason_of(message) == reason
