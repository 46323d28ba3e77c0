"""
One shipment: its status and dates, when it will be checked next and why, and its
event timeline, newest first.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import DataTable, Static

from ..format import ago, clock_time, countdown, date_time, fit, status_content, status_label
from ..messages import SyncRequested
from .base import ConsoleScreen


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
        self.shipment: dict[str, Any] | None = None
        self.why: dict[str, Any] | None = None

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
        client = self.console.api
        self.shipment, self.why = await asyncio.gather(client.shipment(self.shipment_id), client.why(self.shipment_id))
        self.show()

    def show(self) -> None:
        s = self.shipment or {}
        now = self.console.clock()
        title = self.query_one("#detail-title", Static)
        title.update(
            Content.assemble(
                (f" {s.get('id', self.shipment_id)}", "bold"),
                f" · {s.get('carrier_code', '?')} {s.get('tracking_number', '?')}",
                f" · ref {s['reference']}" if s.get("reference") else "",
                "  ",
                status_content(s.get("status_code"), 30),
            )
        )
        rows = [
            (
                "status",
                f"{s.get('status_code') or '—'} {s.get('status_description') or status_label(s.get('status_code'))}",
            ),
            ("exception", s.get("exception_description") or "—"),
            ("estimated", date_time(s.get("estimated_delivery_at"))),
            ("delivered", date_time(s.get("actual_delivery_at"))),
            ("status since", date_time(s.get("status_changed_at"))),
            ("last synced", f"{date_time(s.get('last_synced_at'))}, {ago(s.get('last_synced_at'), now)}"),
            ("added", date_time(s.get("created_at"))),
            ("active", "yes" if s.get("active") else "no (terminal or expired)"),
        ]
        if s.get("consecutive_failures"):
            rows.append(("failures", f"{s['consecutive_failures']} in a row: {s.get('last_error_kind')}"))
            rows.append(("last error", s.get("last_error") or "—"))
        facts = Content("\n").join(
            Content.assemble((fit(label, 13), "$text-muted"), str(value)) for label, value in rows
        )
        self.query_one("#detail-facts", Static).update(facts)
        why = self.why or {}
        nxt = why.get("next_sync_at")
        explanation = [str(line) for line in why.get("explanation") or []]
        if explanation and explanation[0].startswith(("due now", "next check at")):
            explanation = explanation[1:]  # the lines above already say it
        lines = [
            Content.assemble(
                ("next   ", "$text-muted"),
                f"{countdown(nxt, now)} ({clock_time(nxt)})" if nxt else str(why.get("state") or "—"),
            ),
            Content.assemble(("state  ", "$text-muted"), str(why.get("state") or "—")),
            Content.assemble(("why    ", "$text-muted"), str(why.get("reason") or "—")),
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
        for i, event in enumerate(s.get("events") or []):
            table.add_row(
                Text(date_time(event.get("occurred_at")).replace(" UTC", "")),
                Text(str(event.get("status_code") or "")),
                Text(str(event.get("description") or "")),  # carrier text: never parsed as markup
                Text(str(event.get("location") or "")),
                key=str(i),
            )
        if not s.get("events"):
            table.add_row("—", "", "no tracking events yet", "", key="none")

    def on_daemon_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "shipment.status_changed" and event.get("id") == self.shipment_id:
            self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_sync_this(self) -> None:
        self.post_message(SyncRequested(shipments=[self.shipment_id]))
