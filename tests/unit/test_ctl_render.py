"""shiptrackctl's pure output helpers: relative times, durations, tables, colour rules, argument types."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta

import pytest

from shiptrackd.ctl.argtypes import id_list, parse_duration
from shiptrackd.ctl.outbound import render_deliveries, render_delivery, render_endpoints
from shiptrackd.ctl.render import (
    Column,
    Output,
    ProgressLine,
    Table,
    human_bytes,
    human_duration,
    outcome_style,
    rel_next,
    rel_time,
    short_time,
    truncate,
    want_color,
)
from shiptrackd.units import parse_duration as config_parse_duration
from shiptrackd.wire.outbound import Deliveries, DeliveryAttempt, DeliveryInfo, EndpointInfo, Endpoints

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset_s", "expected"),
    [
        (-42, "42s ago"),
        (252, "in 4m12s"),
        (240, "in 4m"),
        (-3 * 3600 - 12 * 60, "3h12m ago"),
        (2 * 86400 + 3 * 3600 + 59, "in 2d3h"),
        (-2.4, "2s ago"),  # relative times are whole seconds
        (0.4, "now"),
    ],
)
def test_relative_times(offset_s: float, expected: str) -> None:
    """Times read as "42s ago" / "in 4m12s", with at most two units."""
    assert rel_time(NOW + timedelta(seconds=offset_s), NOW) == expected


def test_relative_time_parses_the_apis_formats() -> None:
    """Both the store's `…Z` text and isoformat's `+00:00` parse; missing times print a dash."""
    assert rel_time("2026-01-05T08:59:18.000000Z", NOW) == "42s ago"
    assert rel_time("2026-01-05T09:04:00+00:00", NOW) == "in 4m"
    assert rel_time(None, NOW) == "-"
    assert rel_time("garbage", NOW) == "-"


def test_next_times_in_the_past_read_due_now() -> None:
    """A next-run time that has passed says "due now" rather than "3s ago"."""
    assert rel_next(NOW - timedelta(seconds=3), NOW) == "due now"
    assert rel_next(NOW + timedelta(minutes=4), NOW) == "in 4m"
    assert rel_next(None, NOW) == "-"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.25, "250ms"), (4.25, "4s250ms"), (7, "7s"), (12.4, "12s"), (3600, "1h"), (3661, "1h1m"), (3725, "1h2m")],
)
def test_durations(seconds: float, expected: str) -> None:
    """Durations are units.py's grammar cut to two units (milliseconds only under 10 s), reading back as config does."""
    assert human_duration(seconds) == expected
    assert config_parse_duration(expected) == pytest.approx(seconds, abs=60 if seconds > 3600 else 0.5)


def test_sizes_and_times_print_as_units_does() -> None:
    """Sizes are IEC with the unit said (not 1024-based "GB"), times RFC 3339 with Z, a naive time is unreadable."""
    assert human_bytes(9.5 * 10**9) == "8.8 GiB" and human_bytes(512) == "512 B" and human_bytes(None) == "-"
    assert short_time("2026-01-05T09:00:12.345678+00:00") == "2026-01-05T09:00:12Z"
    assert short_time("2026-01-05T10:00:12+01:00") == "2026-01-05T09:00:12Z"
    assert short_time("2026-01-05T09:00:12") == "-" and short_time(None) == "-"


def test_truncate_marks_cuts_with_an_ellipsis() -> None:
    """Text longer than its width ends in … and keeps exactly the width."""
    assert truncate("abcdefgh", 5) == "abcd…"
    assert truncate("abc", 5) == "abc"
    assert truncate("abc", None) == "abc"


def test_table_aligns_columns_and_truncates() -> None:
    """Columns line up under their headers, numbers align right, long cells are cut to the column's cap."""
    table = Table([Column("ID", align=">"), Column("NAME", 6), Column("NOTE")])
    text = table.render([[1, "short", "x"], [22, "a very long name", "y"]], paint=lambda t, s: t)
    assert text.splitlines() == [
        "ID  NAME    NOTE",
        " 1  short   x",
        "22  a ver…  y",
    ]


def test_table_wide_keeps_full_cells_and_pages_reuse_widths() -> None:
    """--wide never truncates; a second page renders with the first page's widths and no header."""
    wide = Table([Column("NAME", 4)], wide=True)
    assert wide.render([["abcdefgh"]], paint=lambda t, s: t).splitlines()[1] == "abcdefgh"
    paged = Table([Column("AB"), Column("C")])
    paged.render([["x", "1"]], paint=lambda t, s: t)
    assert paged.render([["longer", "2"]], paint=lambda t, s: t, header=False) == "l…  2"


@pytest.mark.parametrize(
    ("isatty", "env", "expected"),
    [
        (True, {}, True),
        (False, {}, False),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value disables colour
        (True, {"TERM": "dumb"}, False),
        (True, {"TERM": "xterm-256color"}, True),
    ],
)
def test_colour_rules(isatty: bool, env: dict[str, str], expected: bool) -> None:
    """Colour only on a terminal, with NO_COLOR unset or empty and TERM not dumb."""
    assert want_color(isatty, env) is expected


def test_outcome_words_pick_colours() -> None:
    """The first outcome word decides: "run 3 ok: 0 failed" is green, a partial run yellow."""
    assert outcome_style("run 3 ok: 2 updated, 0 failed of 2") == "green"
    assert outcome_style("run 4 partial: 1 updated, 1 failed") == "yellow"
    assert outcome_style("failed") == "red"
    assert outcome_style("ran; nothing to do") is None


def test_json_errors_go_to_both_streams_and_progress_stays_off_stdout() -> None:
    """Errors under --json: a JSON object on stdout and a line on stderr; progress is drawn only on a terminal."""
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(json_mode=True, stdout=stdout, stderr=stderr, env={})
    out.error("not_found", "no shipment 'x'")
    assert stdout.getvalue().strip() == '{"error": {"code": "not_found", "message": "no shipment \'x\'"}}'
    assert stderr.getvalue() == "shiptrackctl: no shipment 'x'\n"
    progress = ProgressLine(out)
    progress.draw(1, 2, "half")
    assert stderr.getvalue().count("\n") == 1 and "\r" not in stderr.getvalue()


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("2", 2)])
def test_timeout_durations(text: str, seconds: float) -> None:
    """--timeout reads 90s, 5m, 1h30m, 250ms or bare seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1w", "90min", "1h 30m", "2d", "1.5h", "30 s", "14d"])
def test_ctl_reads_every_duration_the_daemon_reads(text: str) -> None:
    """ctl's duration arguments accept what config accepts (1w, 90min, "1h 30m", ...) with the same value."""
    assert parse_duration(text) == pytest.approx(config_parse_duration(text))


@pytest.mark.parametrize("text", ["5x", "", "m", "0", "-3s", "1y", "inf"])
def test_bad_timeouts_are_usage_errors(text: str) -> None:
    """A malformed or non-positive --timeout is an argparse usage error."""
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_shipment_id_lists() -> None:
    """--shipments splits on commas, drops blanks and repeats, and refuses an empty list."""
    assert id_list(" ship_1, ship_2,,ship_1 ") == ["ship_1", "ship_2"]
    with pytest.raises(argparse.ArgumentTypeError):
        id_list(" , ")


def test_deliveries_show_prints_each_attempts_whole_error_and_the_list_keeps_its_cut() -> None:
    """A notice's error names its failed targets past 60 characters: show prints it whole, under its attempt."""
    error = "1 of 2 targets failed: ops-pager (tgram://****/****): HTTP 502 from the gateway, try later"
    attempts = [
        DeliveryAttempt(attempt=1, at=NOW, outcome="failed", http_status=None, latency_ms=12.5, error=error),
        DeliveryAttempt(attempt=2, at=NOW, outcome="delivered", http_status=200, latency_ms=3.0, error=""),
    ]
    delivery = DeliveryInfo(
        id=7,
        message_id="msg_7",
        endpoint="shop",
        shipment_id="ship_1",
        event_type="shipment.updated",
        created_at=NOW,
        state="delivered",
        attempts=2,
        next_attempt_at=None,
        last_status=None,
        last_error=error,
        finished_at=NOW,
        attempt_log=attempts,
    )
    shown, listed = io.StringIO(), io.StringIO()
    render_delivery(Output(stdout=shown, env={}), delivery)
    lines = shown.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith("1  "))
    assert lines[first + 1] == "   " + error  # its own line, whole, under the AT column
    assert lines[first + 2].lstrip().startswith("2  ") and len(lines) == first + 3  # no line for no error
    render_deliveries(Output(stdout=listed, env={}), Deliveries(deliveries=[delivery]))
    assert error not in listed.getvalue() and error[:49] + "…" in listed.getvalue()


def _endpoint(name: str, error: str) -> EndpointInfo:
    return EndpointInfo(
        name=name,
        url="https://example.test/hook",
        state="failing",
        events=["shipment.updated"],
        undelivered=1,
        lag_s=30.0,
        dead=0,
        disabled_reason="",
        failing_since=NOW,
        last_success_at=None,
        last_attempt_at=NOW,
        last_error=error,
    )


def test_endpoints_list_says_where_a_cut_error_reads_whole() -> None:
    """The list keeps LAST ERROR at 60 characters (no per-endpoint view shows more), so when it cuts one a
    line under the table points to --json and --wide; --wide prints it whole and needs no such line."""
    error = "1 of 2 targets failed: json://desk:****@127.0.0.1:8123/hook: not delivered (HTTP 502)"
    doc = Endpoints(endpoints=[_endpoint("notices", error), _endpoint("shop", "HTTP 500: a server error")])
    listed, wide, short = io.StringIO(), io.StringIO(), io.StringIO()
    render_endpoints(Output(stdout=listed, env={}), doc)
    lines = listed.getvalue().splitlines()
    assert error not in lines[1] and error[:59] + "…" in lines[1] and len(lines) == 4
    assert lines[-1] == "(LAST ERROR cut at 60 characters: --json or --wide shows it whole)"
    render_endpoints(Output(stdout=wide, env={}, wide=True), doc)
    assert error in wide.getvalue() and len(wide.getvalue().splitlines()) == 3
    render_endpoints(Output(stdout=short, env={}), Endpoints(endpoints=doc.endpoints[1:]))
    assert len(short.getvalue().splitlines()) == 2  # nothing cut: no line under the table
