"""
`shiptrackctl alert`, `alerts` and `silence`: notify now, what was notified, and muting a check.

Stdlib only at the top (shiptrackctl's start-up time); the client comes in through runner.command().
"""

from __future__ import annotations

import argparse

from ..wire.names import EXIT_FAILURE, EXIT_OK, KNOWN_CHECKS
from .argtypes import count, parse_duration
from .render import Column, rel_time, short_time, word_style
from .runner import command, output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..api.client import ApiClient
    from ..wire import alerting as walert
    from .render import Output
    from .runner import Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add alert, alerts and silence to shiptrackctl's command tree."""
    p = sub.add_parser(
        "alert",
        parents=[common],
        help="run the checks and notify now under the usual rules (--test: a test notice to every channel)",
    )
    p.add_argument("--test", action="store_true", help="send a test notice to every channel; exit 1 if one failed")
    p.set_defaults(handler=command(alert))

    p = sub.add_parser("alerts", parents=[common], help="recent notifications, per channel, and each check's alert")
    p.add_argument("--limit", type=count, default=20, metavar="N", help="how many notifications (default 20)")
    p.set_defaults(handler=command(alerts))

    p = sub.add_parser("silence", parents=[common], help="mute a check's alerts until a time: add, list, remove")
    silence = p.add_subparsers(dest="silence_action", metavar="ACTION", required=True, parser_class=type(p))
    sp = silence.add_parser("add", parents=[common], help="mute CHECK (or * for every check)")
    sp.add_argument("check", metavar="CHECK", help=f"one of {', '.join(KNOWN_CHECKS)}, or *")
    when = sp.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", type=parse_duration, metavar="DURATION", help="e.g. 30m, 2h, 1d")
    when.add_argument("--until", metavar="TIME", help="an ISO 8601 time with a zone, e.g. 2026-01-05T18:00Z")
    sp.add_argument("--comment", default="", help="why (shown in `silence list`)")
    sp.set_defaults(handler=command(silence_add))
    sp = silence.add_parser("list", parents=[common], help="active silences (--all: expired and removed too)")
    sp.add_argument("--all", action="store_true", help="include expired and removed silences")
    sp.set_defaults(handler=command(silence_list))
    sp = silence.add_parser("remove", parents=[common], help="lift a silence before it expires")
    sp.add_argument("id", type=int, metavar="ID")
    sp.set_defaults(handler=command(silence_remove))


# --- alert, alerts ------------------------------------------------------------------------------


async def alert(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    if args.test:
        result = await client.alert_test()
        out.show(result, render_test)
        return EXIT_OK if result.delivered else EXIT_FAILURE
    evaluated = await client.alert_evaluate()
    out.show(evaluated, render_evaluation)
    failed = [d for d in evaluated.deliveries if d.status != "sent"]
    return EXIT_FAILURE if failed else EXIT_OK


def render_test(out: Output, result: walert.TestSent) -> None:
    """`alert --test`: the notice's number and how each channel took it."""
    out.line(f"test notice #{result.notification_id} to {len(result.deliveries)} channel(s):")
    _deliveries(out, result.deliveries)


def render_evaluation(out: Output, result: walert.Evaluated) -> None:
    """`alert`: the report's level, what was held back or sent, and each check's alert state."""
    report = result.report
    out.line(f"health {report.level}: {report.summary}")
    for held in result.held:
        out.line(f"held back: {held.check} {held.kind} ({held.held})")
    if result.notification_id:
        checks = ", ".join(f"{s.check} {s.kind}" for s in result.sent)
        out.line(f"notification #{result.notification_id}: {checks}")
        _deliveries(out, result.deliveries)
    else:
        out.line("nothing to notify")
    _states(out, result.states)


def _deliveries(out: Output, deliveries: Sequence[walert.Delivery]) -> None:
    out.table(
        [Column("CHANNEL", max_width=60), Column("STATUS", style=word_style), Column("ATTEMPTS"), Column("ERROR")],
        [[d.channel, d.status, d.attempts, d.error] for d in deliveries],
    )


def _states(out: Output, states: Sequence[walert.AlertStateInfo]) -> None:
    if not states:
        return
    out.line()
    rows = []
    for s in states:
        if s.firing:
            alert = f"firing {s.notified_level} since {short_time(s.fired_at)}"
        elif s.failing_streak:
            alert = f"pending ({s.failing_streak} failing in a row)"
        else:
            alert = "-"
        rows.append([s.check, s.level, alert])
    out.table([Column("CHECK"), Column("LEVEL", style=word_style), Column("ALERT", style=word_style)], rows)


async def alerts(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    out.show(await client.alerts(limit=max(1, min(args.limit, 500))), render_alerts)
    return EXIT_OK


def render_alerts(out: Output, doc: walert.Alerts) -> None:
    """Recent notifications (with --verbose their text), each check's alert state, the channels."""
    rows = []
    for n in doc.notifications:
        sent = sum(1 for d in n.deliveries if d.status == "sent")
        failed = [d.channel for d in n.deliveries if d.status == "failed"]
        delivered = f"{sent}/{len(n.deliveries)}" + (f" (failed: {', '.join(failed)})" if failed else "")
        checks = ", ".join(c.check for c in n.checks) or "-"
        rows.append([n.id, short_time(n.created_at), n.kind, n.severity, checks, delivered])
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
        for n in doc.notifications:
            out.line()
            out.line(f"#{n.id} {n.title}")
            out.line(n.body.rstrip())
    _states(out, doc.states)
    out.line()
    out.line("channels: " + ", ".join(c.channel + ("" if c.usable else " (unusable)") for c in doc.channels))


# --- silences -----------------------------------------------------------------------------------


async def silence_add(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    silence = await client.add_silence(args.check, duration=args.duration, until=args.until, comment=args.comment)
    out.show(silence, render_silence_added)
    return EXIT_OK


def render_silence_added(out: Output, silence: walert.Silence) -> None:
    out.line(
        f"silence {silence.id}: {silence.check_name} muted until {silence.until_at.isoformat().replace('+00:00', 'Z')}"
        f" ({rel_time(silence.until_at)})"
    )


async def silence_list(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    include_expired = bool(args.all)

    def render(out: Output, doc: walert.SilenceList) -> None:
        if doc.silences:
            render_silences(out, doc.silences)
        else:
            out.line("no silences" if include_expired else "no active silences")

    out.show(await client.silences(include_expired=include_expired), render)
    return EXIT_OK


def render_silences(out: Output, silences: Sequence[walert.Silence]) -> None:
    """The silences table: check, state, until when."""
    rows = []
    for s in silences:
        state = "active" if s.active else ("removed" if s.removed_at else "expired")
        rows.append([s.id, s.check_name, state, short_time(s.until_at), rel_time(s.until_at), s.comment])
    columns = [
        Column("ID", align=">"),
        Column("CHECK"),
        Column("STATE"),
        Column("UNTIL"),
        Column("ENDS"),
        Column("COMMENT"),
    ]
    out.table(columns, rows)


async def silence_remove(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    out.show(await client.remove_silence(args.id), lambda out, _doc: out.line(f"silence {args.id} removed"))
    return EXIT_OK
