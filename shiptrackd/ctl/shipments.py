"""
`shiptrackctl shipments add/import/list/show/remove/retrack/set-carrier`.

Import sends the whole file as one request, which the daemon adds in one transaction: a
client killed (or a daemon failing) mid-file leaves nothing half-imported. Only a file
past REQUEST_BYTES of JSON (some 40,000 typical records) goes in several requests; each
is all-or-nothing, and running the same import again adds just what is missing
(a line already tracked is reported as a duplicate, never added twice). One bad line never
costs the others; every complaint names the file's line number.
"""

from __future__ import annotations

import argparse
import sys

from ..wire.names import EXIT_FAILURE, EXIT_OK, STATUS_NAMES
from .argtypes import page_size
from .completion import FILE
from .render import Column, Output, ProgressLine, Table, rel_next, rel_time, short_time, truncate
from .runner import CtlError, command, output
from .status import render_why

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TextIO

    from ..api.client import ApiClient
    from ..wire import answers as wire
    from .import_file import Line
    from .runner import Subparsers

# The daemon refuses bodies over 8 MiB (api/server.py MAX_BODY_BYTES); half of it leaves room for the envelope.
REQUEST_BYTES = 4 * 1024 * 1024
_STATUS_STYLES = {"DE": "green", "IT": "cyan", "AT": "yellow", "EX": "red", "NY": "dim", "UN": "dim"}


def status_text(code: str | None) -> str:
    """`IT in transit`; `-` before the first sync."""
    return f"{code} {STATUS_NAMES.get(code, '')}".rstrip() if code else "-"


def status_style(text: str) -> str | None:
    return _STATUS_STYLES.get(text.split(" ", 1)[0])


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add `shipments add/import/list/show/remove/retrack/set-carrier` to shiptrackctl's command tree."""
    p = sub.add_parser("shipments", parents=[common], help="add, import, list, show, remove or retrack shipments")
    ship = p.add_subparsers(dest="shipments_action", metavar="ACTION", required=True)

    sp = ship.add_parser(
        "add",
        parents=[common],
        help="track one shipment",
        description="Without CARRIER a provider account that detects carriers (AfterShip, 17TRACK, EasyPost) "
        "finds it at the next sync; with none configured the daemon refuses (exit 1, carrier_required).",
    )
    sp.add_argument("carrier", metavar="CARRIER", nargs="?", default="", help="carrier code, e.g. ups, fedex, usps")
    sp.add_argument("tracking", metavar="TRACKING", help="tracking number")
    sp.add_argument("--reference", default="", help="your own reference (order number, ...)")
    sp.add_argument("--provider", default="", help="the [[providers]] account to track it with (default: by carrier)")
    sp.set_defaults(handler=command(add))

    sp = ship.add_parser(
        "import",
        parents=[common],
        help="track many shipments from a CSV (header row) or JSON-lines file; - reads stdin",
        description="CSV needs a header naming tracking_number (carrier_code, reference and provider optional: "
        "without a carrier, an account that detects carriers finds it); JSON lines carry the same fields. "
        "Invalid lines are reported by line number; exit 1 if any. The file is added in "
        "one transaction: interrupted, it adds nothing (a file over ~4 MB goes in parts, each all-or-nothing; "
        "run it again to add the rest: shipments already tracked are reported as duplicates, not added twice).",
    )
    sp.add_argument("file", metavar="FILE").complete = FILE  # type: ignore[attr-defined]  # read by shtab
    sp.add_argument("--format", choices=("csv", "jsonl"), help="skip detection (by extension, then content)")
    sp.set_defaults(handler=command(import_file))

    sp = ship.add_parser("list", parents=[common], help="list shipments, a page at a time (--all: every page)")
    sp.add_argument("--status", help="status code: IT, DE, EX, NY, ... or none")
    sp.add_argument("--carrier", help="carrier code")
    sp.add_argument("--search", metavar="Q", help="an id, or the start of a tracking number or reference")
    sp.add_argument("--active", action=argparse.BooleanOptionalAction, default=None, help="only (in)active ones")
    sp.add_argument("--limit", type=page_size, default=100, metavar="N", help="rows per page, 1-1000 (default 100)")
    sp.add_argument("--cursor", help="continue after this id (printed at the end of a page)")
    sp.add_argument("--all", action="store_true", help="walk every page")
    sp.set_defaults(handler=command(list_))

    sp = ship.add_parser(
        "set-carrier",
        parents=[common],
        help="override a shipment's carrier (a wrong detection): it is registered again, due now",
    )
    sp.add_argument("id", metavar="ID")
    sp.add_argument("carrier", metavar="CARRIER", help="carrier code, e.g. ups, fedex, usps")
    sp.set_defaults(handler=command(set_carrier))

    for action, text, fn in (
        ("show", "one shipment with its event timeline", show),
        ("remove", "stop tracking a shipment and forget its history", remove),
        ("retrack", "put an expired or delivered shipment back into the schedule, due now", retrack),
    ):
        sp = ship.add_parser(action, parents=[common], help=text, description=text)
        sp.add_argument("id", metavar="ID")
        sp.set_defaults(handler=command(fn))


# --- add ----------------------------------------------------------------------------------------


async def add(client: ApiClient, args: argparse.Namespace) -> int:
    from msgspec import to_builtins  # loaded already: the client decodes with it

    from ..api.client import ApiError

    record = {"tracking_number": args.tracking}
    if args.carrier:
        record["carrier_code"] = args.carrier
    if args.reference:
        record["reference"] = args.reference
    if args.provider:
        record["provider"] = args.provider
    who = f"{args.carrier} {args.tracking}".strip()
    try:
        # A list of one: the daemon reports an invalid or already tracked record in the answer, not as 400/409.
        result = await client.add_shipments([record])
    except ApiError as exc:
        if exc.http_status == 400:  # the body itself refused (not the record): say so the same way
            raise CtlError(f"{who}: {exc.message}", code=exc.code) from None
        raise
    if result.invalid:
        raise CtlError(f"{who}: {result.invalid[0].error}", code=result.invalid[0].code)
    if result.duplicates:
        raise CtlError(f"{who}: already tracked as {result.duplicates[0].id}", code="duplicate")
    item = {k: v for k, v in to_builtins(result.added[0]).items() if k != "index"}
    output(args).show(item, render_added)
    return EXIT_OK


def render_added(out: Output, item: dict[str, Any]) -> None:
    if item["carrier_code"]:
        out.line(f"added {item['id']} ({item['carrier_code']} {item['tracking_number']})")
    else:
        detector = item.get("provider") or "its provider"
        out.line(f"added {item['id']} ({item['tracking_number']}): {detector} detects its carrier at the next sync")


# --- import -------------------------------------------------------------------------------------


def _open_source(name: str) -> TextIO:
    """The file to import (`-` = stdin); newline="" so quoted CSV fields may span lines."""
    if name == "-":
        return sys.stdin
    try:
        return open(name, encoding="utf-8-sig", newline="")  # closed by the caller
    except OSError as exc:
        raise CtlError(f"cannot read {name}: {exc.strerror}", code="file_error") from None


async def import_file(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    name = args.file
    from json import dumps  # here, not at the top: `--help` stays stdlib-light

    format_name = {"csv": "input.csv", "jsonl": "input.jsonl"}.get(args.format or "", name)
    result: dict[str, list[dict[str, Any]]] = {"added": [], "duplicates": [], "invalid": []}
    progress = ProgressLine(out)
    source = _open_source(name)
    try:
        chunk: list[Line] = []
        chunk_bytes = 0
        for line in _records(format_name, source, name):
            if line.error:
                result["invalid"].append({"line": line.line, "error": line.error})
                continue
            size = len(dumps(line.record)) + 2
            if chunk and chunk_bytes + size > REQUEST_BYTES:
                await _send(client, chunk, result)
                chunk, chunk_bytes = [], 0
                progress.draw(line.line, None, f"{name}: line {line.line}, {len(result['added'])} added")
            chunk.append(line)
            chunk_bytes += size
        if chunk:
            await _send(client, chunk, result)
    finally:
        progress.clear()
        if source is not sys.stdin:
            source.close()
    result["invalid"].sort(key=lambda item: item["line"])
    out.show({"file": name, **result}, render_import)
    return EXIT_FAILURE if result["invalid"] else EXIT_OK


def _records(format_name: str, source: TextIO, name: str) -> Iterator[Line]:
    from .import_file import ImportFormatError, read_records  # csv and json: loaded for an import only

    try:
        yield from read_records(format_name, source)
    except ImportFormatError as exc:
        raise CtlError(f"{name}: {exc}", code="invalid_file") from None
    except UnicodeDecodeError as exc:
        raise CtlError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})", code="invalid_file") from None


async def _send(client: ApiClient, chunk: list[Line], result: dict[str, list[dict[str, Any]]]) -> None:
    """Add one chunk; the API reports by index within the chunk, mapped back to file lines."""
    answer = await client.add_shipments([line.record for line in chunk])
    for key, items in (("added", answer.added), ("duplicates", answer.duplicates)):
        for item in items:
            fields = {"id": item.id, "carrier_code": item.carrier_code, "tracking_number": item.tracking_number}
            result[key].append({"line": chunk[item.index].line, **fields, "reference": item.reference})
    for bad in answer.invalid:
        result["invalid"].append({"line": chunk[bad.index].line, "error": bad.error})


def render_import(out: Output, result: dict[str, Any]) -> None:
    """The import's summary line, each invalid line, and with --verbose each duplicate."""
    name = result["file"]
    added, dups, invalid = (len(result[k]) for k in ("added", "duplicates", "invalid"))
    summary = f"{name}: {added} added, {dups} duplicate(s) already tracked, "
    out.line(summary + out.paint(f"{invalid} invalid", "red" if invalid else None))
    for item in result["invalid"]:
        out.line(f"  line {item['line']}: {item['error']}")
    if out.verbose:
        for item in result["duplicates"]:
            out.line(f"  line {item['line']}: duplicate of {item['id']}")
    elif dups:
        out.note("--verbose lists the duplicates")


# --- list ---------------------------------------------------------------------------------------

LIST_COLUMNS = [
    Column("ID"),
    Column("CARRIER", 12),
    Column("TRACKING", 26),
    Column("STATUS", 20, style=status_style),
    Column("LAST SYNC"),
    Column("NEXT CHECK"),
    Column("REFERENCE", 24),
]


def _row(s: wire.Shipment) -> list[str]:
    nxt = rel_next(s.next_sync_at) if s.active else "never (inactive)"
    return [
        s.id,
        s.carrier_code or "?",  # "": its provider detects it at the next sync
        s.tracking_number,
        status_text(s.status_code),
        rel_time(s.last_synced_at),
        nxt,
        s.reference,
    ]


async def list_(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    table = Table(LIST_COLUMNS, wide=out.wide)
    collected: list[wire.Shipment] = []
    cursor, shown = args.cursor, 0
    while True:
        page = await client.shipments(
            status=args.status,
            carrier=args.carrier,
            search=args.search,
            active=args.active,
            cursor=cursor,
            limit=args.limit,
        )
        items, cursor = page.shipments, page.next_cursor
        if out.json:  # one document at the end; a person sees each page as it comes (--all: memory stays flat)
            collected.extend(items)
        elif items:  # columns sized by the first page
            out.line(table.render([_row(s) for s in items], paint=out.paint, header=shown == 0))
        shown += len(items)
        if not (args.all and cursor):
            break
    if out.json:
        out.emit({"shipments": collected, "next_cursor": cursor})
    elif shown == 0:
        out.note("no shipments match")
    elif cursor:
        out.note(f"more after this page: --cursor {cursor} (or --all for every page)")
    return EXIT_OK


# --- show, remove, retrack ------------------------------------------------------------------------


async def show(client: ApiClient, args: argparse.Namespace) -> int:
    output(args).show(await client.shipment(args.id), render_shipment)
    return EXIT_OK


def render_shipment(out: Output, s: wire.ShipmentDetail) -> None:
    """One shipment: its fields, its schedule, and its tracking events."""
    ref = f"  ({s.reference})" if s.reference else ""
    out.line(f"{out.paint(s.id, 'bold')}  {s.carrier_code or '?'} {s.tracking_number}{ref}")
    status = status_text(s.status_code)
    detail = f" - {s.status_description}" if s.status_description else ""
    pairs: list[tuple[str, str]] = [
        ("status", f"{out.paint(status, status_style(status))}{detail}"),
        ("carrier", carrier_text(s)),
    ]
    if s.status_changed_at:
        pairs.append(("changed", f"{short_time(s.status_changed_at)} ({rel_time(s.status_changed_at)})"))
    if s.exception_description:
        pairs.append(("exception", s.exception_description))
    for label, at in (("estimated", s.estimated_delivery_at), ("delivered", s.actual_delivery_at)):
        if at:
            pairs.append((label, f"{short_time(at)} ({rel_time(at)})"))
    pairs.append(("last sync", rel_time(s.last_synced_at)))
    if s.active:
        pairs.append(("next check", f"{rel_next(s.next_sync_at)} ({s.schedule_reason or 'new'})"))
    else:
        pairs.append(("next check", f"never: {s.schedule_reason or 'inactive'}"))
    if s.consecutive_failures:
        last = f"{s.consecutive_failures} in a row; last {s.last_error_kind}: "
        pairs.append(("failures", last + truncate(s.last_error, 100)))
    pairs.append(("created", f"{short_time(s.created_at)} ({rel_time(s.created_at)})"))
    out.kv(pairs)
    events = s.events
    out.line()
    if not events:
        out.line(out.paint("no tracking events yet", "dim"))
        return
    columns = [
        Column("TIME (UTC)"),
        Column("STATUS", style=status_style),
        Column("DESCRIPTION", 60),
        Column("LOCATION", 40),
    ]
    rows = [[short_time(e.occurred_at), e.status_code or "-", e.description, e.location] for e in events]
    out.table(columns, rows)


def carrier_text(s: wire.Shipment) -> str:
    """`ups (detected by as-main)`: the carrier and how it is known."""
    by = s.provider or "its provider"
    if s.carrier_source == "pending":
        return f"not known yet ({by} detects it at the next sync)"
    if s.carrier_source == "detected":
        return f"{s.carrier_code} (detected by {by})"
    if s.carrier_source == "set":
        was = f"; {s.detected_carrier} was detected" if s.detected_carrier else ""
        return f"{s.carrier_code} (set by an operator{was})"
    return s.carrier_code


async def set_carrier(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    doc = await client.set_carrier(args.id, args.carrier)
    out.show(doc, lambda out, s: out.line(f"{s.id} is tracked as {carrier_text(s)}, due now"))
    return EXIT_OK


async def remove(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    doc = await client.remove_shipment(args.id)
    out.show(doc, lambda out, doc: out.line(f"removed {doc.removed}"))
    return EXIT_OK


async def retrack(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    doc = await client.retrack(args.id)

    def render(out: Output, doc: wire.Why) -> None:
        out.line(f"{args.id} is back in the schedule")
        render_why(out, doc)

    out.show(doc, render)
    return EXIT_OK
