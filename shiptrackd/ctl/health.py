"""
`shiptrackctl health`: the daemon's health report, and a monitoring plugin for Nagios and kin.

`health` follows the monitoring-plugin convention so Icinga, Nagios or Zabbix can run it as a
check: exit 0 ok, 1 warning, 2 critical, 3 unknown, and whatever happens it prints one status
line first (`SHIPTRACKD <LEVEL>: ...`): 2 with `cannot reach shiptrackd at ...` when the daemon
is down; 3 with `permission denied on <socket>; add yourself to group 'shiptrack' ...` when the
check's user may not use the socket (a misconfigured check, not an outage), with
`bad arguments: ...`, and with `internal error: ...`.
`--format=nagios` prints `SHIPTRACKD WARNING: ... | 'label'=value[unit];warn;crit;min;max ...`.

Stdlib only at the top (shiptrackctl's start-up time); the client comes in through runner.command().
"""

from __future__ import annotations

import argparse
import re
import sys

from ..wire.names import LEVEL_EXIT_CODES, UNKNOWN
from .argtypes import count
from .render import Column, Output, human_duration, rel_time, short_time, word_style
from .runner import command, output, plugin_usage

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    from ..api.client import ApiClient
    from ..wire import answers as wire
    from .runner import Subparsers

EXIT_UNKNOWN = LEVEL_EXIT_CODES[UNKNOWN]


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add health to shiptrackctl's command tree."""
    p = sub.add_parser(
        "health",
        parents=[common],
        help="health report; exit 0 ok, 1 warning, 2 critical (daemon unreachable too), 3 unknown",
        description="The daemon's last health report (--fresh: run the checks now). Exit codes follow the "
        "monitoring-plugin convention: 0 ok, 1 warning, 2 critical (also when the daemon cannot be reached), "
        "3 unknown: permission denied on the socket (add the check's user to the shiptrack group), bad "
        "arguments, or an internal error. Every outcome prints one SHIPTRACKD <LEVEL>: status line first.",
    )
    plugin_usage(
        p, exit_code=EXIT_UNKNOWN, status_line=lambda message: status_line("unknown", f"bad arguments: {message}")
    )
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
        type=count,
        metavar="N",
        help="judge stale_shipments against N (more than N stale warns) instead of [health] stale_warning",
    )
    p.add_argument("--stale-limit", type=count, default=None, metavar="N", help="list at most N stale (default 50)")
    p.set_defaults(handler=command(health))


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


# --- health ------------------------------------------------------------------------------------


async def health(client: ApiClient, args: argparse.Namespace) -> int:
    """The report as text, JSON or one plugin line; the exit code is its level. Never fails silently."""
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
        if fmt == "json":
            out.emit(report)
            return LEVEL_EXIT_CODES.get(report.level, EXIT_UNKNOWN)
        lines = nagios_lines(report) if fmt == "nagios" else None  # built first: a bad report fails before output
    except DaemonUnavailableError as exc:
        if exc.code == "permission_denied":
            # A monitoring user outside the socket's group is a misconfigured check (UNKNOWN), not an outage,
            # and the client's message says the real cause and the fix.
            return _plugin_error(out, fmt, "unknown", exc.code, exc.message)
        text = f"cannot reach shiptrackd at {client.socket_path}"
        reason = reason_of(exc.message)
        return _plugin_error(out, fmt, "critical", exc.code, text + (f" ({reason})" if reason else ""))
    except ApiError as exc:
        # The daemon is up but its store is full or broken (507/500 store_*): an outage, not a misconfiguration.
        level = "critical" if exc.http_status in (503, 507) or exc.code.startswith("store") else "unknown"
        return _plugin_error(out, fmt, level, exc.code, f"shiptrackd answered an error: {exc.message}")
    except Exception as exc:  # a plugin always prints its status line; cancellation still passes through
        if getattr(args, "debug", False):
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        return _plugin_error(out, fmt, "unknown", "internal", f"internal error: {type(exc).__name__}: {exc}")
    if lines is not None:
        for line in lines:
            out.line(line)
    else:
        render_health(out, report)
    return LEVEL_EXIT_CODES.get(report.level, EXIT_UNKNOWN)


def status_line(level: str, text: str) -> str:
    """`SHIPTRACKD <LEVEL>: text` on one line, with no `|` (which would start perfdata)."""
    return _one_line(f"SHIPTRACKD {level.upper()}: {text}")


def _plugin_error(out: Output, fmt: str, level: str, code: str, text: str) -> int:
    """A failure reported as the check's result: the status line (or under JSON the error document)."""
    if fmt == "json":
        out.emit({"error": {"code": code, "message": text, "level": level}})
        out.note(f"shiptrackctl: {text}")
    else:
        out.line(status_line(level, text))
    return LEVEL_EXIT_CODES[level]


def reason_of(message: str) -> str:
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


def perf_item(perf: wire.Perf) -> str:
    """'label'=value[unit];warn;crit;min;max with trailing empty fields dropped (monitoring-plugin perfdata)."""
    label = perf.label.replace("'", "''")
    fields = [
        f"{_number(perf.value)}{perf.unit}",
        perf.warn,
        perf.crit,
        "" if perf.min is None else _number(perf.min),
        "" if perf.max is None else _number(perf.max),
    ]
    return f"'{label}'=" + ";".join(fields).rstrip(";")


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")  # as the daemon wrote it


def nagios_lines(report: wire.HealthReport) -> list[str]:
    """The plugin line (`SHIPTRACKD LEVEL: summary | perfdata`), then the stale shipments if listed."""
    perf = " ".join(perf_item(p) for check in report.checks for p in check.perf)
    first = f"SHIPTRACKD {report.level.upper()}: {_one_line(report.summary)}"
    lines = [first + (f" | {perf}" if perf else "")]
    for s in report.stale_shipments or []:
        last = _stamp(s.last_synced_at) if s.last_synced_at else f"never (added {_stamp(s.created_at)})"
        lines.append(_one_line(f"stale {s.id} {s.carrier_code} {s.tracking_number} last updated {last}"))
    return lines


def render_health(out: Output, report: wire.HealthReport) -> None:
    level = report.level
    head = f"shiptrackd health: {out.paint(level.upper(), word_style(level) or 'bold')}"
    # The daemon says how old its report is: its clock, not this machine's, is the one that counts.
    age = f"{human_duration(report.age_s)} ago" if report.age_s is not None else rel_time(report.at)
    out.line(f"{head}  (host {report.host}, report {age}, {report.trigger})")
    rows = []
    for check in report.checks:
        detail = check.message
        if check.threshold and (check.level != "ok" or out.verbose):
            detail += f" ({check.threshold})"
        rows.append([check.name, check.level, detail])
    out.table([Column("CHECK"), Column("STATE", style=word_style), Column("DETAIL", max_width=100)], rows)
    stale = report.stale_shipments
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
                    s.id,
                    s.carrier_code,
                    s.tracking_number,
                    s.status_code or "-",
                    short_time(s.last_synced_at) if s.last_synced_at else "never",
                    s.last_error,
                ]
                for s in stale
            ],
        )
