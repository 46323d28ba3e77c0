"""
shiptrackctl health, alert, alerts and silence: plugged into shiptrackctl by `register()`.

`health` follows the monitoring-plugin convention so Icinga, Nagios or Zabbix can run it as a
check: exit 0 ok, 1 warning, 2 critical, 3 unknown (bad arguments too), and 2 with one
`SHIPTRACKD CRITICAL: cannot reach shiptrackd at ...` line when the daemon is down.
`--format=nagios` prints `SHIPTRACKD WARNING: ... | 'label'=value[unit];warn;crit;min;max ...`.

Stdlib only at the top (shiptrackctl's start-up time); the client comes in through ctl.command().
"""

from __future__ import annotations

import argparse
import re

from .main import EXIT_FAILURE, EXIT_OK, command, output, parse_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ..api.client import ApiClient
    from .render import Output

HEALTH_EXIT = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
EXIT_UNKNOWN = 3
CHECK_NAMES = ("api_connectivity", "recent_sync", "stale_shipments", "error_rate", "loops", "store")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add health, alert, alerts and silence to shiptrackctl's command tree."""
    p = sub.add_parser(
        "health",
        parents=[common],
        help="health report; exit 0 ok, 1 warning, 2 critical (daemon unreachable too), 3 unknown",
        description="The daemon's last health report (--fresh: run the checks now). Exit codes follow the "
        "monitoring-plugin convention: 0 ok, 1 warning, 2 critical (also when the daemon cannot be reached), "
        "3 unknown (bad arguments too).",
    )
    p.usage_exit_code = EXIT_UNKNOWN  # type: ignore[attr-defined]  # ctl._Parser: usage errors are UNKNOWN here
    _reject_leftovers(p)
    p.add_argument(
        "--format",
        choices=("text", "json", "nagios"),
        default="text",
        help="text (default), json (same as --json), or nagios: one monitoring-plugin line with perfdata",
    )
    p.add_argument("--fresh", action="store_true", help="run the checks now instead of showing the last report")
    p.add_argument("--check-stale", action="store_true", help="also list the stale shipments, oldest first")
    p.add_argument(
        "--alert-threshold",
        type=_count,
        metavar="N",
        help="judge stale_shipments against N (more than N stale warns) instead of [health] stale_warning",
    )
    p.add_argument("--stale-limit", type=_count, default=None, metavar="N", help="list at most N stale (default 50)")
    p.set_defaults(handler=command(_health))

    p = sub.add_parser(
        "alert",
        parents=[common],
        help="run the checks and notify now under the usual rules (--test: a test notice to every channel)",
    )
    p.add_argument("--test", action="store_true", help="send a test notice to every channel; exit 1 if one failed")
    p.set_defaults(handler=command(_alert))

    p = sub.add_parser("alerts", parents=[common], help="recent notifications, per channel, and each check's alert")
    p.add_argument("--limit", type=_count, default=20, metavar="N", help="how many notifications (default 20)")
    p.set_defaults(handler=command(_alerts))

    p = sub.add_parser("silence", parents=[common], help="mute a check's alerts until a time: add, list, remove")
    silence = p.add_subparsers(dest="silence_action", metavar="ACTION", required=True, parser_class=type(p))
    sp = silence.add_parser("add", parents=[common], help="mute CHECK (or * for every check)")
    sp.add_argument("check", metavar="CHECK", help=f"one of {', '.join(CHECK_NAMES)}, or *")
    when = sp.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", type=parse_duration, metavar="DURATION", help="e.g. 30m, 2h, 1d")
    when.add_argument("--until", metavar="TIME", help="an ISO 8601 time with a zone, e.g. 2026-01-05T18:00Z")
    sp.add_argument("--comment", default="", help="why (shown in `silence list`)")
    sp.set_defaults(handler=command(_silence_add))
    sp = silence.add_parser("list", parents=[common], help="active silences (--all: expired and removed too)")
    sp.add_argument("--all", action="store_true", help="include expired and removed silences")
    sp.set_defaults(handler=command(_silence_list))
    sp = silence.add_parser("remove", parents=[common], help="lift a silence before it expires")
    sp.add_argument("id", type=int, metavar="ID")
    sp.set_defaults(handler=command(_silence_remove))


def _reject_leftovers(parser: argparse.ArgumentParser) -> None:
    """Make `health --bogus` this parser's usage error (exit 3), not the top-level parser's (exit 2).

    argparse hands a subcommand's unrecognised arguments back to the top-level parser, which
    reports them with its own exit code; so check for leftovers here, where the health one applies.
    """
    parse_known = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = parse_known(args, namespace)
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]  # deliberate: patches this one parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


# --- health ------------------------------------------------------------------------------------


async def _health(client: ApiClient, args: argparse.Namespace) -> int:
    from ..api.client import ApiError
    from ..errors import DaemonUnavailableError

    fmt = "json" if getattr(args, "json", False) else args.format
    out = output(args)
    try:
        report = await client.health(
            fresh=args.fresh,
            alert_threshold=args.alert_threshold,
            check_stale=args.check_stale,
            stale_limit=args.stale_limit,
        )
    except DaemonUnavailableError as exc:
        # A monitoring user outside the socket's group is a misconfigured check (UNKNOWN), not an outage.
        level = "unknown" if exc.code == "permission_denied" else "critical"
        return _plugin_error(out, fmt, level, exc.code, f"cannot reach shiptrackd at {client.socket_path}", exc.message)
    except ApiError as exc:
        level = "critical" if exc.http_status == 503 else "unknown"
        return _plugin_error(out, fmt, level, exc.code, f"shiptrackd answered an error: {exc.message}", "")
    if fmt == "json":
        out.emit(report)
    elif fmt == "nagios":
        for line in nagios_lines(report):
            out.line(line)
    else:
        render_health(out, report)
    return HEALTH_EXIT.get(report.get("level", "unknown"), EXIT_UNKNOWN)


def _plugin_error(out: Output, fmt: str, level: str, code: str, text: str, detail: str) -> int:
    reason = _reason(detail)
    if fmt == "json":
        out.error(code, text + (f" ({reason})" if reason else ""), level=level)
    else:
        out.line(_one_line(f"SHIPTRACKD {level.upper()}: {text}" + (f" ({reason})" if reason else "")))
    return HEALTH_EXIT[level]


def _reason(message: str) -> str:
    """ "shiptrackd is not running at X (socket missing).  systemctl ..." -> "socket missing"."""
    if not message:
        return ""
    m = re.search(r"\(([^()]*)\)", message)
    if m:
        return m[1]
    return message.split(";")[0].split("  ")[0].strip().rstrip(".")


def _one_line(text: str) -> str:
    return " ".join(text.replace("|", "/").split())


def _number(value: Any) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    if number.is_integer():
        return str(int(number))
    return f"{number:.4f}".rstrip("0").rstrip(".")


def perf_item(perf: Mapping[str, Any]) -> str:
    """'label'=value[unit];warn;crit;min;max with trailing empty fields dropped (monitoring-plugin perfdata)."""
    label = str(perf["label"]).replace("'", "''")
    fields = [
        f"{_number(perf['value'])}{perf.get('unit') or ''}",
        perf.get("warn") or "",
        perf.get("crit") or "",
        "" if perf.get("min") is None else _number(perf["min"]),
        "" if perf.get("max") is None else _number(perf["max"]),
    ]
    return f"'{label}'=" + ";".join(fields).rstrip(";")


def nagios_lines(report: Mapping[str, Any]) -> list[str]:
    """The plugin line (`SHIPTRACKD LEVEL: summary | perfdata`), then the stale shipments if listed."""
    perf = " ".join(perf_item(p) for check in report.get("checks", []) for p in check.get("perf") or [])
    first = f"SHIPTRACKD {str(report.get('level', 'unknown')).upper()}: {_one_line(report.get('summary', ''))}"
    lines = [first + (f" | {perf}" if perf else "")]
    for s in report.get("stale_shipments") or []:
        last = s.get("last_synced_at") or f"never (added {s.get('created_at')})"
        lines.append(_one_line(f"stale {s['id']} {s['carrier_code']} {s['tracking_number']} last updated {last}"))
    return lines


def render_health(out: Output, report: Mapping[str, Any]) -> None:
    from .render import Column, human_duration, rel_time, short_time, word_style

    level = str(report.get("level", "unknown"))
    head = f"shiptrackd health: {out.paint(level.upper(), word_style(level) or 'bold')}"
    # The daemon says how old its report is: its clock, not this machine's, is the one that counts.
    age = f"{human_duration(report['age_s'])} ago" if report.get("age_s") is not None else rel_time(report.get("at"))
    out.line(f"{head}  (host {report.get('host')}, report {age}, {report.get('trigger')})")
    rows = []
    for check in report.get("checks", []):
        detail = check.get("message", "")
        threshold = check.get("threshold")
        if threshold and (check.get("level") != "ok" or out.verbose):
            detail += f" ({threshold})"
        rows.append([check["name"], check["level"], detail])
    out.table([Column("CHECK"), Column("STATE", style=word_style), Column("DETAIL", max_width=100)], rows)
    stale = report.get("stale_shipments")
    if stale is not None:
        out.line()
        if not stale:
            out.line("no stale shipments")
            return
        out.line(f"stale shipments (oldest first, {len(stale)} shown):")
        out.table(
            [
                Column("ID"),
                Column("CARRIER"),
                Column("TRACKING"),
                Column("STATUS"),
                Column("LAST UPDATE"),
                Column("LAST ERROR", max_width=50),
            ],
            [
                [
                    s["id"],
                    s["carrier_code"],
                    s["tracking_number"],
                    s.get("status_code") or "-",
                    short_time(s.get("last_synced_at")) if s.get("last_synced_at") else "never",
                    s.get("last_error") or "",
                ]
                for s in stale
            ],
        )


# --- alert, alerts ------------------------------------------------------------------------------


async def _alert(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    if args.test:
        result = await client.alert_test()
        if out.json:
            out.emit(result)
        else:
            out.line(f"test notice #{result['notification_id']} to {len(result['deliveries'])} channel(s):")
            _deliveries(out, result["deliveries"])
        return EXIT_OK if result["delivered"] else EXIT_FAILURE
    result = await client.alert_evaluate()
    if out.json:
        out.emit(result)
    else:
        report = result["report"]
        out.line(f"health {report['level']}: {report['summary']}")
        for held in result["held"]:
            out.line(f"held back: {held['check']} {held['kind']} ({held['held']})")
        if result["notification_id"]:
            checks = ", ".join(f"{s['check']} {s['kind']}" for s in result["sent"])
            out.line(f"notification #{result['notification_id']}: {checks}")
            _deliveries(out, result["deliveries"])
        else:
            out.line("nothing to notify")
        _states(out, result["states"])
    failed = [d for d in result["deliveries"] if d["status"] != "sent"]
    return EXIT_FAILURE if failed else EXIT_OK


def _deliveries(out: Output, deliveries: Sequence[Mapping[str, Any]]) -> None:
    from .render import Column, word_style

    out.table(
        [Column("CHANNEL", max_width=60), Column("STATUS", style=word_style), Column("ATTEMPTS"), Column("ERROR")],
        [[d["channel"], d["status"], d["attempts"], d.get("error") or ""] for d in deliveries],
    )


def _states(out: Output, states: Sequence[Mapping[str, Any]]) -> None:
    from .render import Column, short_time, word_style

    if not states:
        return
    out.line()
    rows = []
    for s in states:
        if s["firing"]:
            alert = f"firing {s['notified_level']} since {short_time(s['fired_at'])}"
        elif s["failing_streak"]:
            alert = f"pending ({s['failing_streak']} failing in a row)"
        else:
            alert = "-"
        rows.append([s["check"], s["level"], alert])
    out.table([Column("CHECK"), Column("LEVEL", style=word_style), Column("ALERT", style=word_style)], rows)


async def _alerts(client: ApiClient, args: argparse.Namespace) -> int:
    from .render import Column, short_time, word_style

    out = output(args)
    doc = await client.alerts(limit=max(1, min(args.limit, 500)))
    if out.json:
        out.emit(doc)
        return EXIT_OK
    rows = []
    for n in doc["notifications"]:
        sent = sum(1 for d in n["deliveries"] if d["status"] == "sent")
        failed = [d["channel"] for d in n["deliveries"] if d["status"] == "failed"]
        delivered = f"{sent}/{len(n['deliveries'])}" + (f" (failed: {', '.join(failed)})" if failed else "")
        checks = ", ".join(c["check"] for c in n["checks"]) or "-"
        rows.append([n["id"], short_time(n["created_at"]), n["kind"], n["severity"], checks, delivered])
    if rows:
        columns = [
            Column("ID", align=">"),
            Column("WHEN"),
            Column("KIND"),
            Column("SEVERITY", style=word_style),
            Column("CHECKS", max_width=50),
            Column("DELIVERED", max_width=60),
        ]
        out.table(columns, rows)
    else:
        out.line("no notifications yet")
    if out.verbose:
        for n in doc["notifications"]:
            out.line()
            out.line(f"#{n['id']} {n['title']}")
            out.line(n["body"].rstrip())
    _states(out, doc["states"])
    out.line()
    out.line(
        "channels: " + ", ".join(f"{c['channel']}" + ("" if c["usable"] else " (unusable)") for c in doc["channels"])
    )
    return EXIT_OK


# --- silences -----------------------------------------------------------------------------------


async def _silence_add(client: ApiClient, args: argparse.Namespace) -> int:
    from .render import rel_time

    out = output(args)
    silence = await client.add_silence(args.check, duration=args.duration, until=args.until, comment=args.comment)
    if out.json:
        out.emit(silence)
    else:
        out.line(
            f"silence {silence['id']}: {silence['check_name']} muted until {silence['until_at']}"
            f" ({rel_time(silence['until_at'])})"
        )
    return EXIT_OK


async def _silence_list(client: ApiClient, args: argparse.Namespace) -> int:
    from .render import Column, rel_time

    out = output(args)
    silences = await client.silences(include_expired=args.all)
    if out.json:
        out.emit(silences)
        return EXIT_OK
    if not silences:
        out.line("no active silences" if not args.all else "no silences")
        return EXIT_OK
    rows = []
    for s in silences:
        state = "active" if s["active"] else ("removed" if s["removed_at"] else "expired")
        rows.append([s["id"], s["check_name"], state, s["until_at"], rel_time(s["until_at"]), s["comment"]])
    columns = [
        Column("ID", align=">"),
        Column("CHECK"),
        Column("STATE"),
        Column("UNTIL"),
        Column("ENDS"),
        Column("COMMENT"),
    ]
    out.table(columns, rows)
    return EXIT_OK


async def _silence_remove(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    result = await client.remove_silence(args.id)
    if out.json:
        out.emit(result)
    else:
        out.line(f"silence {args.id} removed")
    return EXIT_OK
