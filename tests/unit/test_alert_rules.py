"""The alert rules as pure functions: streaks, decisions, grouping and messages, one report at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shiptrackd.alerts.delivery import Channel
from shiptrackd.alerts.rules import AlertState, Decision, Policy, after_notice, compose, decide, observe, plan
from shiptrackd.health.rules import CheckResult, judge_error_rate

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
POLICY = Policy(for_reports=2, resolve_after=2, repeat_interval_s=4 * 3600, send_resolved=True)


def state(**kw: Any) -> AlertState:
    return AlertState("recent_sync", **kw)


@pytest.mark.parametrize(
    ("before", "level", "failing", "passing"),
    [
        (state(), "warning", 1, 0),
        (state(failing_streak=1), "critical", 2, 0),
        (state(failing_streak=3), "ok", 0, 1),
        (state(passing_streak=1), "ok", 0, 2),
        (state(), "unknown", 1, 0),  # a check that could not run counts as failing
    ],
)
def test_streaks(before: AlertState, level: str, failing: int, passing: int) -> None:
    """Each report extends the failing or the passing streak and resets the other."""
    after = observe(before, level, "msg", 1.0)
    assert (after.failing_streak, after.passing_streak, after.level) == (failing, passing, level)


FIRED = {
    "notified_level": "warning",
    "fired_at": NOW - timedelta(hours=1),
    "last_notified_at": NOW - timedelta(hours=1),
}


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (state(level="warning", failing_streak=1), None),  # a blip: not yet `for` reports
        (state(level="warning", failing_streak=2), Decision("recent_sync", "firing", "warning")),
        (state(level="unknown", failing_streak=2), Decision("recent_sync", "firing", "warning")),
        (state(level="warning", failing_streak=9, **FIRED), None),  # notified an hour ago: quiet
        (state(level="critical", failing_streak=9, **FIRED), Decision("recent_sync", "escalated", "critical")),
        (
            state(level="warning", failing_streak=60, **{**FIRED, "last_notified_at": NOW - timedelta(hours=4)}),
            Decision("recent_sync", "repeat", "warning"),
        ),
        (
            state(level="warning", failing_streak=9, **{**FIRED, "notified_level": "critical"}),
            None,  # critical -> warning is not news
        ),
        (state(level="ok", passing_streak=1, **FIRED), None),
        (state(level="ok", passing_streak=2, **FIRED), Decision("recent_sync", "resolved", "warning")),
        (state(level="ok", passing_streak=50), None),  # never fired: nothing to resolve
    ],
)
def test_decide(current: AlertState, expected: Decision | None) -> None:
    """Fire after `for`, repeat after repeat_interval, escalate at once, resolve after `resolve_after` passes."""
    assert decide(current, NOW, POLICY, silenced=False, inhibited=False) == expected


@pytest.mark.parametrize(
    ("current", "silenced", "inhibited", "send_resolved", "held"),
    [
        (state(level="critical", failing_streak=2), True, False, True, "silenced"),
        (state(level="critical", failing_streak=2), False, True, True, "api_connectivity is critical"),
        (state(level="ok", passing_streak=2, **FIRED), False, True, True, ""),  # good news is not inhibited
        (state(level="ok", passing_streak=2, **FIRED), True, False, True, "silenced"),
        (state(level="ok", passing_streak=2, **FIRED), False, False, False, "send_resolved is off"),
    ],
)
def test_held_back(current: AlertState, silenced: bool, inhibited: bool, send_resolved: bool, held: str) -> None:
    """Silences mute everything; inhibition holds back only firing notices; send_resolved=false drops resolved."""
    policy = Policy(2, 2, 3600, send_resolved)
    decision = decide(current, NOW, policy, silenced=silenced, inhibited=inhibited)
    assert decision is not None and decision.held == held


def test_after_notice() -> None:
    """Firing records the level and times; a repeat keeps fired_at; resolving clears the firing state."""
    fired = after_notice(state(level="warning"), Decision("recent_sync", "firing", "warning"), NOW)
    assert (fired.notified_level, fired.fired_at, fired.last_notified_at) == ("warning", NOW, NOW)
    later = NOW + timedelta(hours=4)
    repeated = after_notice(fired, Decision("recent_sync", "repeat", "warning"), later)
    assert (repeated.fired_at, repeated.last_notified_at) == (NOW, later)
    assert not after_notice(repeated, Decision("recent_sync", "resolved", "warning"), later).firing


def _check(name: str, level: str) -> CheckResult:
    return CheckResult(name, level, f"{name} {level}")


def test_plan_groups_and_inhibits_one_report() -> None:
    """One report: the API notice goes out, its symptoms are held, and a muted recovery closes quietly."""
    states = {
        "api_connectivity": AlertState("api_connectivity", "critical", 1),
        "stale_shipments": AlertState("stale_shipments", "warning", 5),
        "loops": AlertState("loops", "warning", 1),
        "store": AlertState("store", "ok", 0, 1, "warning", NOW, NOW),
    }
    checks = [
        _check("api_connectivity", "critical"),
        _check("stale_shipments", "warning"),
        _check("loops", "warning"),
        _check("store", "ok"),
    ]
    result = plan(states, checks, NOW, POLICY, silenced={"store"})
    assert [(d.check, d.kind) for d in result.send] == [("api_connectivity", "firing"), ("loops", "firing")]
    assert {(d.check, d.held) for d in result.held} == {
        ("stale_shipments", "api_connectivity is critical"),
        ("store", "silenced"),
    }
    assert not result.states["store"].firing  # recovered while silenced: closed without a notice
    assert result.states["api_connectivity"].failing_streak == 2 and not result.states["api_connectivity"].firing


def test_plan_without_inhibition_lets_symptoms_fire() -> None:
    """With inhibit = false the symptom checks fire beside the API check."""
    states = {"stale_shipments": AlertState("stale_shipments", "warning", 1)}
    checks = [_check("api_connectivity", "ok"), _check("stale_shipments", "warning")]
    result = plan(states, checks, NOW, POLICY, inhibit=False)
    assert [d.check for d in result.send] == ["stale_shipments"]


def test_message_carries_host_value_threshold_and_evidence() -> None:
    """A grouped message: worst first, each with its value against its thresholds and the error kinds."""
    errors = judge_error_rate(
        40, 100, {"transient": 30, "not_found": 10}, window_s=3600, warning_pct=10, critical_pct=50, min_attempts=20
    )
    checks = {"error_rate": errors, "loops": _check("loops", "critical")}
    decisions = [Decision("error_rate", "firing", "warning"), Decision("loops", "escalated", "critical")]
    states = {"loops": AlertState("loops", "critical", 5, 0, "warning", NOW - timedelta(minutes=30), NOW)}
    title, body = compose(decisions, checks, states, host="vm-7", now=NOW)
    assert title == "[CRITICAL] shiptrackd on vm-7: error_rate, loops"
    assert body.splitlines() == [
        "shiptrackd on vm-7, 2026-01-05T12:00:00Z",
        "",
        "CRITICAL loops (escalated): loops critical, failing since 2026-01-05T11:30:00Z (30m)",
        "WARNING error_rate: 40.0% of fetches failed in the last 1h (40 of 100; transient 30, not_found 10)",
        "  value 40.0% (warning above 10.0%, critical above 50.0%)",
        "  errors by kind: transient 30, not_found 10",
    ]


@pytest.mark.parametrize(
    ("tags", "severities", "accepts"),
    [
        ((), {"warning"}, True),
        (("critical",), {"warning"}, False),
        (("critical",), {"warning", "critical"}, True),
        (("warning", "critical"), {"critical"}, True),
        (("critical",), {"info"}, True),  # test notices reach every channel
    ],
)
def test_routing_by_tags(tags: tuple[str, ...], severities: set[str], accepts: bool) -> None:
    """Untagged channels take every severity; tagged ones the severities they name; tests go everywhere."""
    assert Channel("k", "name", tags).accepts(severities) is accepts
