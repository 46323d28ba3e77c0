"""
One shipment: its status and dates, its pushes (subscribed since, count, the last one), when
it will be checked next and why (push regime included), and its event timeline, newest first.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import DataTable, Static

from shiptrackd.wire import events as ev
from shiptrackd.wire.answers import ShipmentDetail, Why

from ..events import ConsoleEvent
from ..format import ago, clock_time, countdown, date_time, fit, number, status_content, status_label
from ..messages import SyncRequested
from .base import ConsoleScreen

PUSH_LINES = ("regime: ", "subscribed to pushes since ")
PUSHES = " push(es) received, the last at "


def push_line(s: ShipmentDetail, now: datetime) -> str:
    """'3, the last 12m ago' (and a missed change, if a poll found one no push reported), or 'none'."""
    if not s.push_count:
        return "none received"
    text = f"{number(s.push_count)}, the last {ago(s.last_push_at, now)}"
    return text + (" · a poll found a change no push reported" if s.push_missed else "")


class ShipmentDetailScreen(ConsoleScreen):
    TITLE = "Shipment"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("y", "sync_this", "Sync this"),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self, shipment_id: str) -> None:
        super().__init__()
        self.shipment_id = shipment_id
        self.shipment: ShipmentDetail | None = None
        self.why: Why | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(Content.styled(f" {self.shipment_id} · loading…", "bold"), id="detail-title")
        with Horizontal(id="detail-top"):
            yield Static(id="detail-facts", classes="panel")
            yield Static(id="detail-why", classes="panel")
        table: DataTable[Any] = DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
        table.border_title = "Timeline"
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#detail-facts").border_title = "Status (UTC)"
        self.query_one("#detail-why").border_title = "Next check"
        self.reload()

    def reload(self) -> None:
        self.run_worker(self._load(), group="detail", exclusive=True, name="Load shipment", exit_on_error=False)

    async def _load(self) -> None:
        api = self.console.api
        self.shipment, self.why = await asyncio.gather(api.shipment(self.shipment_id), api.why(self.shipment_id))
        self.show()

    def show(self) -> None:
        s, why = self.shipment, self.why
        if s is None or why is None:
            return
        now = self.console.clock()
        title = self.query_one("#detail-title", Static)
        title.update(
            Content.assemble(
                (f" {s.id}", "bold"),
                f" · {s.carrier_code} {s.tracking_number}",
                f" · ref {s.reference}" if s.reference else "",
                "  ",
                status_content(s.status_code, 30),
            )
        )
        rows = [
            ("status", f"{s.status_code or '—'} {s.status_description or status_label(s.status_code)}"),
            ("exception", s.exception_description or "—"),
            ("estimated", date_time(s.estimated_delivery_at)),
            ("delivered", date_time(s.actual_delivery_at)),
            ("status since", date_time(s.status_changed_at)),
            ("last synced", f"{date_time(s.last_synced_at)}, {ago(s.last_synced_at, now)}"),
            ("added", date_time(s.created_at)),
            ("active", "yes" if s.active else "no (terminal or expired)"),
            ("subscribed", date_time(s.subscribed_at) if s.subscribed_at else "no (not subscribed to pushes)"),
            ("pushes", push_line(s, now)),
        ]
        if s.consecutive_failures:
            rows.append(("failures", f"{s.consecutive_failures} in a row: {s.last_error_kind}"))
            rows.append(("last error", s.last_error or "—"))
        facts = Content("\n").join(Content.assemble((fit(label, 13), "$text-muted"), value) for label, value in rows)
        self.query_one("#detail-facts", Static).update(facts)
        nxt = why.next_sync_at
        explanation = why.explanation
        if explanation and explanation[0].startswith(("due now", "next check at")):
            explanation = explanation[1:]  # the lines above already say it
        # why's push lines (sync/cadence.push_lines) say in text what why.push and the facts say typed
        explanation = [line for line in explanation if not line.startswith(PUSH_LINES) and PUSHES not in line]
        lines = [
            Content.assemble(
                ("next   ", "$text-muted"), f"{countdown(nxt, now)} ({clock_time(nxt)})" if nxt else why.state or "—"
            ),
            Content.assemble(("state  ", "$text-muted"), why.state or "—"),
            Content.assemble(("why    ", "$text-muted"), why.reason or "—"),
            Content.assemble(("push   ", "$text-muted"), why.push.regime),
            *(Content(f"• {line}") for line in explanation),
        ]
        self.query_one("#detail-why", Static).update(Content("\n").join(lines))
        table = self.query_one(DataTable)
        if not table.columns:
            # Fixed widths from the screen's width: long carrier texts must not push the location off.
            spare = max(self.size.width - 16 - 2 - 4 * 2 - 4, 30)
            table.add_column("WHEN (UTC)", key="when", width=16)
            table.add_column("ST", key="status", width=2)
            table.add_column("EVENT", key="event", width=spare * 3 // 5)
            table.add_column("LOCATION", key="location", width=spare - spare * 3 // 5)
        table.clear()
        for i, event in enumerate(s.events):
            table.add_row(
                Text(date_time(event.occurred_at).replace(" UTC", "")),
                Text(event.status_code),
                Text(event.description),  # carrier text: never parsed as markup
                Text(event.location),
                key=str(i),
            )
        if not s.events:
            table.add_row("—", "", "no tracking events yet", "", key="none")

    def on_daemon_event(self, event: ConsoleEvent) -> None:
        if isinstance(event, ev.ShipmentStatusChanged) and event.id == self.shipment_id:
            self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_sync_this(self) -> None:
        self.post_message(SyncRequested(shipments=[self.shipment_id]))
