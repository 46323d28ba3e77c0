"""
`shiptrackctl endpoints` and `deliveries`: the application's webhook endpoints and what was sent to them.

endpoints list | test NAME | enable NAME; deliveries list [--endpoint] [--state] | show ID |
retry ID | retry --dead | replay --endpoint NAME --since 2h. Stdlib only at the top (start-up time).
"""

from __future__ import annotations

import argparse

from ..wire.names import EXIT_FAILURE, EXIT_OK
from .argtypes import count, parse_duration
from .render import Column, Table, human_duration, rel_time, short_time, word_style
from .runner import command, output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from ..api.client import ApiClient
    from ..wire import outbound as wire
    from .render import Output
    from .runner import Subparsers

STATES = ("pending", "failed", "sending", "delivered", "dead")


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add endpoints and deliveries to shiptrackctl's command tree."""
    p = sub.add_parser("endpoints", parents=[common], help="outbound webhook endpoints: list, test, enable")
    actions = p.add_subparsers(dest="endpoints_action", metavar="ACTION", required=True, parser_class=type(p))
    sp = actions.add_parser("list", parents=[common], help="each endpoint: state, lag, undelivered, last error")
    sp.set_defaults(handler=command(endpoints_list))
    sp = actions.add_parser("test", parents=[common], help="send a signed ping to NAME and show its answer")
    sp.add_argument("name", metavar="NAME")
    sp.set_defaults(handler=command(endpoints_test))
    sp = actions.add_parser("enable", parents=[common], help="enable NAME again after a 410 or disable_after")
    sp.add_argument("name", metavar="NAME")
    sp.set_defaults(handler=command(endpoints_enable))

    p = sub.add_parser("deliveries", parents=[common], help="webhook deliveries: list, show, retry, replay")
    actions = p.add_subparsers(dest="deliveries_action", metavar="ACTION", required=True, parser_class=type(p))
    sp = actions.add_parser("list", parents=[common], help="newest first; dead ones are the dead letters")
    sp.add_argument("--endpoint", metavar="NAME", help="only this endpoint")
    sp.add_argument("--state", choices=STATES, help="only deliveries in this state")
    sp.add_argument("--limit", type=count, default=50, metavar="N", help="how many (default 50)")
    sp.set_defaults(handler=command(deliveries_list))
    sp = actions.add_parser("show", parents=[common], help="one delivery: its body and every attempt")
    sp.add_argument("id", type=int, metavar="ID")
    sp.set_defaults(handler=command(deliveries_show))
    sp = actions.add_parser("retry", parents=[common], help="send delivery ID again now, or every dead one (--dead)")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, metavar="ID", nargs="?", help="one delivery (dead or waiting)")
    which.add_argument("--dead", action="store_true", help="retry every dead delivery")
    sp.add_argument("--endpoint", metavar="NAME", help="with --dead: only this endpoint's")
    sp.set_defaults(handler=command(deliveries_retry))
    sp = actions.add_parser("replay", parents=[common], help="enqueue again what was sent to NAME since a time ago")
    sp.add_argument("--endpoint", metavar="NAME", required=True)
    sp.add_argument("--since", type=parse_duration, metavar="DURATION", required=True, help="e.g. 2h, 1d")
    sp.set_defaults(handler=command(deliveries_replay))


# --- endpoints ------------------------------------------------------------------------------------


async def endpoints_list(client: ApiClient, args: argparse.Namespace) -> int:
    output(args).show(await client.endpoints(), render_endpoints)
    return EXIT_OK


ERROR_WIDTH = 60  # the list's LAST ERROR column: a notice's "1 of 2 targets failed: …" runs past it


def render_endpoints(out: Output, doc: wire.Endpoints) -> None:
    """
    One row per endpoint: state, what waits and for how long, dead letters, last success and error.
    There is no per-endpoint view, so when an error is cut (the failed targets a notice names come
    after its first 60 characters) a line under the table says where it reads whole.
    """
    if not doc.endpoints:
        out.line("no [[outbound]] endpoints configured")
        return
    rows = [
        [
            e.name,
            e.state,
            e.undelivered,
            human_duration(e.lag_s) if e.undelivered else "-",
            e.dead,
            rel_time(e.last_success_at) if e.last_success_at else "never",
            e.disabled_reason or e.last_error or "",
        ]
        for e in doc.endpoints
    ]
    columns = [
        Column("NAME"),
        Column("STATE", style=word_style),
        Column("UNDELIVERED", align=">"),
        Column("LAG"),
        Column("DEAD", align=">"),
        Column("LAST SUCCESS"),
        Column("LAST ERROR", max_width=ERROR_WIDTH),
    ]
    out.table(columns, rows)
    if not out.wide and any(len(str(row[-1])) > ERROR_WIDTH for row in rows):
        out.line(f"(LAST ERROR cut at {ERROR_WIDTH} characters: --json or --wide shows it whole)")


async def endpoints_test(client: ApiClient, args: argparse.Namespace) -> int:
    result = await client.test_endpoint(args.name)
    output(args).show(result, render_test)
    return EXIT_OK if result.ok else EXIT_FAILURE


def render_test(out: Output, result: wire.EndpointTested) -> None:
    """The ping's id, the HTTP status (or the error) and latency, then the receiver's answer."""
    answer = f"HTTP {result.status}" if result.status is not None else result.error
    out.line(f"ping {result.message_id} to {result.endpoint}: {answer} in {result.latency_ms:g} ms")
    if result.answer:
        out.line(result.answer)


async def endpoints_enable(client: ApiClient, args: argparse.Namespace) -> int:
    result = await client.enable_endpoint(args.name)
    was = "was disabled" if result.was_disabled else "was not disabled"
    output(args).show(result, lambda out, r: out.line(f"endpoint {r.endpoint} enabled ({was})"))
    return EXIT_OK


# --- deliveries -----------------------------------------------------------------------------------


async def deliveries_list(client: ApiClient, args: argparse.Namespace) -> int:
    doc = await client.deliveries(endpoint=args.endpoint, state=args.state, limit=max(1, min(args.limit, 10_000)))
    output(args).show(doc, render_deliveries)
    return EXIT_OK


def render_deliveries(out: Output, doc: wire.Deliveries) -> None:
    """One row per delivery, newest first."""
    if not doc.deliveries:
        out.line("no deliveries")
        return
    rows = [
        [
            d.id,
            short_time(d.created_at),
            d.endpoint,
            d.event_type,
            d.shipment_id,
            d.state,
            d.attempts,
            d.last_status if d.last_status is not None else "-",
            d.last_error,
        ]
        for d in doc.deliveries
    ]
    columns = [
        Column("ID", align=">"),
        Column("CREATED"),
        Column("ENDPOINT"),
        Column("EVENT"),
        Column("SHIPMENT"),
        Column("STATE", style=word_style),
        Column("ATTEMPTS", align=">"),
        Column("HTTP"),
        Column("LAST ERROR", max_width=50),
    ]
    out.table(columns, rows)


async def deliveries_show(client: ApiClient, args: argparse.Namespace) -> int:
    output(args).show(await client.delivery(args.id), render_delivery)
    return EXIT_OK


def render_delivery(out: Output, d: wire.DeliveryInfo) -> None:
    """The delivery, a table of its attempts, and with --verbose the body that was (or will be) sent."""
    out.kv(
        [
            ("id", d.id),
            ("message id", d.message_id),
            ("endpoint", d.endpoint),
            ("event", d.event_type),
            ("shipment", d.shipment_id),
            ("state", d.state),
            ("created", short_time(d.created_at)),
            ("next attempt", short_time(d.next_attempt_at) if d.state in ("pending", "failed") else "-"),
        ]
    )
    out.line()
    render_attempts(out, d.attempt_log or [])
    if out.verbose:
        out.line()
        out.line(d.body or "")


def render_attempts(out: Output, attempts: list[wire.DeliveryAttempt]) -> None:
    """
    A row per attempt, its error in full on the line below: a notice's error names each failed target
    after "1 of 2 targets failed:", which a column cut would hide (the list view keeps its cut).
    """
    if not attempts:
        return
    table = Table(
        [
            Column("#", align=">"),
            Column("AT"),
            Column("OUTCOME", style=word_style),
            Column("HTTP"),
            Column("MS"),
        ],
        wide=out.wide,
    )
    rows = [[a.attempt, short_time(a.at), a.outcome, a.http_status or "-", f"{a.latency_ms:.1f}"] for a in attempts]
    head, *lines = table.render(rows, paint=out.paint).split("\n")
    indent = " " * ((table.widths or [0])[0] + table.gap)  # under AT: the error reads as the row's
    out.line(head)
    for attempt, line in zip(attempts, lines, strict=True):
        out.line(line)
        for text in attempt.error.splitlines():
            out.line(indent + text)


async def deliveries_retry(client: ApiClient, args: argparse.Namespace) -> int:
    if args.id is not None:
        result = await client.retry_delivery(args.id)
    else:
        result = await client.retry_dead_deliveries(args.endpoint)
    output(args).show(result, lambda out, r: out.line(f"{r.retried} delivery(ies) queued to send again"))
    return EXIT_OK


async def deliveries_replay(client: ApiClient, args: argparse.Namespace) -> int:
    result = await client.replay_deliveries(args.endpoint, args.since)
    output(args).show(
        result,
        lambda out, r: out.line(f"{r.replayed} change(s) since {r.since} queued again for {r.endpoint}"),
    )
    return EXIT_OK
