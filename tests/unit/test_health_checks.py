"""The health checks' judging rules as tables: measurements and thresholds in, a level and message out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.config import load
from shiptrackd.health.cluster import judge_cluster
from shiptrackd.health.rules import (
    ApiProbe,
    CheckResult,
    LoopView,
    build_report,
    judge_api,
    judge_error_rate,
    judge_loops,
    judge_recent_sync,
    judge_stale,
    judge_store,
    rejudge_stale,
    space_threshold,
    summarise,
    worst,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


@pytest.mark.parametrize(
    ("probe", "auth_failed_at", "level", "words"),
    [
        (ApiProbe(latency_s=0.12), None, "ok", "answered in 120ms"),
        (ApiProbe(latency_s=6.5), None, "warning", "answered in 6s500ms (slow)"),
        (ApiProbe(error_kind="unauthorized", status=401), None, "critical", "rejected the key (HTTP 401)"),
        (ApiProbe(error_kind="unauthorized", status=403), None, "critical", "HTTP 403"),
        (ApiProbe(error_kind="unreachable", error="connection refused"), None, "critical", "unreachable"),
        (ApiProbe(error_kind="transient", error="HTTP 503", status=503), None, "warning", "answered with an error"),
        (ApiProbe(latency_s=0.1), ago(minutes=10), "critical", "rejected the key during a sync 10m ago"),
        (ApiProbe(latency_s=0.1), ago(hours=2), "ok", "answered"),  # an old 401, outside the window
        (ApiProbe(skipped="the API asked us to wait"), None, "ok", "not probed"),
    ],
)
def test_api_connectivity(probe: ApiProbe, auth_failed_at: datetime | None, level: str, words: str) -> None:
    """Unauthorized, unreachable and a recent 401 during a sync are critical; errors and slowness warn."""
    result = judge_api(probe, now=NOW, auth_failed_at=auth_failed_at, auth_window_s=3600, latency_warning_s=5)
    assert result.level == level and words in result.message


@pytest.mark.parametrize(
    ("last", "started", "level", "words"),
    [
        (ago(minutes=4), ago(days=1), "ok", "last successful sync 4m ago"),
        (ago(minutes=15), ago(days=1), "ok", "15m ago"),  # exactly at the threshold: not above it
        (ago(minutes=16), ago(days=1), "warning", "16m ago"),
        (ago(minutes=61), ago(days=1), "critical", "1h1m ago"),
        (None, ago(minutes=3), "ok", "no successful sync yet (daemon up 3m)"),
        (None, ago(minutes=20), "warning", "no successful sync since the daemon started 20m ago"),
        (None, ago(hours=2), "critical", "since the daemon started 2h ago"),
    ],
)
def test_recent_sync(last: datetime | None, started: datetime, level: str, words: str) -> None:
    """The last successful run's age against 15m / 1h; a young daemon is given time for its first run."""
    result = judge_recent_sync(last, now=NOW, started_at=started, warning_s=900, critical_s=3600)
    assert result.level == level and words in result.message


@pytest.mark.parametrize(
    ("count", "threshold", "level"),
    [(0, None, "ok"), (10, None, "ok"), (11, None, "warning"), (100, None, "warning"), (101, None, "critical")]
    + [(5, 4, "warning"), (5, 5, "ok"), (150, 200, "ok"), (201, 200, "critical")],
)
def test_stale_shipments(count: int, threshold: int | None, level: str) -> None:
    """More than 10 stale warns, more than 100 is critical; --alert-threshold replaces the warning count."""
    result = judge_stale(count, 1000, stale_after_s=36 * 3600, warning=10, critical=100, alert_threshold=threshold)
    assert result.level == level
    assert result.perf[0].label == "stale_shipments" and result.perf[0].value == count


@pytest.mark.parametrize(
    ("failed", "attempted", "level", "words"),
    [
        (5, 10, "ok", "too few to judge"),  # 50% but under min_attempts
        (2, 100, "ok", "2.0% of fetches failed"),
        (11, 100, "warning", "11.0%"),
        (51, 100, "critical", "51.0%"),
        (0, 0, "ok", "0 fetch attempts"),
    ],
)
def test_error_rate(failed: int, attempted: int, level: str, words: str) -> None:
    """Failed / attempted over the window: above 10% warns, above 50% is critical, under 20 attempts is not judged."""
    kinds = {"transient": failed} if failed else {}
    result = judge_error_rate(failed, attempted, kinds, window_s=3600, warning_pct=10, critical_pct=50, min_attempts=20)
    assert result.level == level and words in result.message


def test_error_rate_names_the_top_error_kinds() -> None:
    """The message carries the commonest error kinds, for the alert that quotes it."""
    result = judge_error_rate(
        30, 100, {"not_found": 3, "transient": 20, "invalid_response": 7}, window_s=3600,
        warning_pct=10, critical_pct=50, min_attempts=20,
    )  # fmt: skip
    assert result.message.endswith("(30 of 100; transient 20, invalid_response 7, not_found 3)")


@pytest.mark.parametrize(
    ("loops", "sync_running_s", "level", "words"),
    [
        ([LoopView("sync"), LoopView("health", running=True)], None, "ok", "2 loops healthy"),
        ([LoopView("sync", paused=True, next_run_at=NOW - timedelta(hours=5))], None, "ok", "(sync paused)"),
        (
            [LoopView("health", failures=1, last_error="RuntimeError: boom")],
            None,
            "warning",
            "loop health failed once (RuntimeError: boom)",
        ),
        ([LoopView("health", failures=3, last_error="StoreError: x")], None, "critical", "failed 3 times in a row"),
        ([LoopView("sync", next_run_at=NOW - timedelta(minutes=6))], None, "warning", "sync is 6m overdue"),
        ([LoopView("sync", next_run_at=NOW - timedelta(minutes=4))], None, "ok", "healthy"),
        ([LoopView("sync", running=True)], 1900.0, "warning", "a sync has run for 31m40s (max_runtime 30m)"),
        ([LoopView("sync", running=True)], 3700.0, "critical", "a sync has run for 1h1m40s"),
    ],
)
def test_loops(loops: list[LoopView], sync_running_s: float | None, level: str, words: str) -> None:
    """Loops failing in a row, overdue loops and an over-long sync; a paused loop is never overdue."""
    result = judge_loops(
        loops,
        now=NOW,
        sync_running_s=sync_running_s,
        failures_warning=1,
        failures_critical=3,
        overdue_after_s=300,
        max_runtime_s=1800,
    )
    assert result.level == level and words in result.message


GB = 10**9


@pytest.mark.parametrize(
    ("write_error", "quick", "free", "level", "words"),
    [
        ("", "ok", 50 * GB, "ok", "writable"),
        ("", "ok", 8 * GB, "warning", "only 7.5 GiB free (8%)"),  # below 10% of 100 GB; printed in IEC units
        ("", "ok", 4 * GB, "critical", "only 3.7 GiB free"),  # below 5%
        ("disk I/O error", "ok", 50 * GB, "critical", "cannot be written: disk I/O error"),
        ("", "*** in database main *** Page 4: btreeInitPage() returns error code 11", 50 * GB, "critical", "Page 4"),
    ],
)
def test_store(write_error: str, quick: str, free: int, level: str, words: str) -> None:
    """The store must commit a write, pass quick_check and keep free disk above 10% / 5%."""
    result = judge_store(
        write_error=write_error,
        write_s=0.003,
        quick_check=quick,
        quick_check_age_s=60,
        free_bytes=free,
        total_bytes=100 * GB,
        size_bytes=12_000_000,
        free_warning="10%",
        free_critical="5%",
    )
    assert result.level == level and words in result.message
    assert result.lower_is_worse and result.perf[0].warn == f"{10 * GB}:"  # Nagios: alert below


@pytest.mark.parametrize(("spec", "bytes_"), [("10%", 10 * GB), ("2GB", 2 * GB), ("512MiB", 512 * 2**20), ("0", 0)])
def test_free_disk_thresholds_take_bytes_or_percent(spec: str, bytes_: float) -> None:
    """A free-disk threshold is bytes (decimal or binary units) or a percentage of the disk."""
    assert space_threshold(spec, 100 * GB) == bytes_


def test_report_is_the_worst_check_and_names_the_failing_ones() -> None:
    """The report's level is its worst check (critical > warning > unknown > ok); the summary lists the failing."""
    checks = [
        CheckResult("a", "ok", "fine"),
        CheckResult("b", "warning", "meh"),
        CheckResult("c", "unknown", "could not tell"),
        CheckResult("d", "critical", "broken"),
    ]
    assert summarise(checks) == ("critical", "d: broken; b: meh; c: could not tell")
    assert worst(["ok", "unknown"]) == "unknown" and worst(["unknown", "warning"]) == "warning"
    assert build_report(checks[:1], at=NOW, host="h", trigger="t")["exit_code"] == 0


def test_alert_threshold_rejudges_a_stored_report_without_measuring() -> None:
    """`?alert_threshold=N` judges the stored stale count again: 37 stale is ok at 50 and warns at 2."""
    config = load(None, env={"SHIPTRACK_DAEMON__STATE_DIR": "/tmp/x"}).health
    stale = judge_stale(37, 500, stale_after_s=config.stale_after_s, warning=10, critical=100)
    report = build_report([stale, CheckResult("recent_sync", "ok", "fine")], at=NOW, host="h", trigger="schedule")
    assert report["level"] == "warning"
    assert rejudge_stale(report, 50, config)["level"] == "ok"
    assert rejudge_stale(report, 2, config)["checks"][0]["warning"] == 2


def _member(host: str, age_s: float, roles: tuple[str, ...] = ()) -> dict[str, object]:
    return {"id": host, "host": host, "pid": 7, "heartbeat_age_s": age_s, "roles": list(roles)}


@pytest.mark.parametrize(
    ("members", "held", "level", "words"),
    [
        ([_member("a", 2, ("force", "health")), _member("b", 4)], {"force", "health"}, "ok", "health led by a:7"),
        (
            [_member("a", 2, ("force", "health")), _member("b", 31)],
            {"force", "health"},
            "warning",
            "b:7 silent for 31s",
        ),
        ([_member("a", 2, ("force",)), _member("b", 4)], {"force"}, "critical", "no leader holds health"),
        # The lock is the server's word: a member still claiming a role whose lock is gone leads nothing.
        ([_member("a", 2, ("force", "health"))], set(), "critical", "no leader holds force, health"),
        ([_member("a", 40, ("force", "health"))], {"force"}, "critical", "silent for 40s"),
    ],
)
def test_cluster(members: list[dict[str, object]], held: set[str], level: str, words: str) -> None:
    """A stale heartbeat warns; a singleton whose leader lock nobody holds is critical."""
    result = judge_cluster(members, ["force", "health"], held, stale_after_s=30)
    assert result.name == "cluster" and result.level == level and words in result.message, result.message
    assert {p.label: p.value for p in result.perf}["cluster_unled_singletons"] == 2 - len(held)


def test_api_connectivity_of_several_accounts_names_the_worst() -> None:
    """One account's result is kept as it is; of several, the worst is named and every account's is in details."""
    from shiptrackd.health.rules import judge_accounts

    fine = judge_api(ApiProbe(latency_s=0.2), now=NOW, auth_failed_at=None, auth_window_s=3600, latency_warning_s=5)
    down = judge_api(
        ApiProbe(error_kind="unreachable", error="connect refused"),
        now=NOW,
        auth_failed_at=None,
        auth_window_s=3600,
        latency_warning_s=5,
    )
    assert judge_accounts([("only", down)]) is down
    named = judge_accounts([("domestic", fine), ("intl", down)])
    assert (named.level, named.message) == ("critical", "intl: the API is unreachable: connect refused")
    assert named.details["accounts"]["domestic"]["level"] == "ok" and named.details["provider"] == "intl"
    both = judge_accounts([("domestic", fine), ("intl", fine)])
    assert both.level == "ok" and both.message.startswith("every account answered: domestic 200ms, intl 200ms")
    assert [p.label for p in both.perf] == ["api_latency_domestic", "api_latency_intl"]
