"""
The deliveries view (issue 11): the application's webhook endpoints, each with its state,
backlog, lag and last error, and the latest deliveries to them, newest first.

What `shiptrackctl endpoints list` and `deliveries list` show, from the same routes. No event
carries deliveries, so the view re-reads both on open, on ctrl+r, on a filter change, and
every refresh_s while it is on screen (re-armed after each read, so reads never overlap).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.timer import Timer
from textual.widgets import DataTable, Static

from shiptrackd.errors import ShiptrackError
from shiptrackd.wire.outbound import DeliveryInfo, EndpointInfo

from ..format import LEVEL_STYLE, ago, duration, fit, number
from ..state import CONNECTION, OUTBOUND
from ..widgets.webhook_panels import ENDPOINT_LEVEL, endpoint_summary
from .base import ConsoleScreen
from .detail import ShipmentDetailScreen

LIMIT = 200  # deliveries listed; `shiptrackctl deliveries list --limit` reaches further back
ERROR_W = 36  # a delivery's last error, cut (the endpoint's, in full, is in the table above)


def styled_cell(text: str, key: str | None = None, colours: dict[str, str] | None = None) -> Text:
    """A table cell, never parsed as markup (receivers' errors are arbitrary text), styled by level.

    LEVEL_STYLE speaks theme variables ($error); a Rich Text cell needs them resolved (*colours*).
    """
    words = []
    for word in LEVEL_STYLE.get(key or "", "").split():
        if word.startswith("$"):
            word = (colours or {}).get(word[1:], "")
            if not word.startswith("#"):
                continue  # 'auto 60%' (text-muted) is no Rich colour: leave the cell plain
        words.append(word)
    return Text(text, style=" ".join(words))


class DeliveriesScreen(ConsoleScreen):
    TITLE = "Deliveries"
    AUTO_FOCUS = "#endpoint-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "only_endpoint", "Endpoint filter"),
        Binding("d", "toggle_dead", "Dead only"),
        Binding("c", "clear_filters", "Clear filters"),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint: str | None = None  # only this endpoint's deliveries
        self.dead_only = False
        self.deliveries: list[DeliveryInfo] | None = None  # None until the first answer
        self.error = ""  # why the last read failed
        self._timer: Timer | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(id="deliveries-title")
        endpoints: DataTable[Any] = DataTable(id="endpoint-table", cursor_type="row", zebra_stripes=True)
        endpoints.border_title = "Endpoints"
        yield endpoints
        yield Static(id="endpoints-note", classes="note")
        listing: DataTable[Any] = DataTable(id="delivery-table", cursor_type="row", zebra_stripes=True)
        listing.border_title = "Latest deliveries"
        yield Static(id="deliveries-note", classes="note")
        yield listing

    def on_mount(self) -> None:
        super().on_mount()
        endpoints = self.query_one("#endpoint-table", DataTable)
        for label, key in [
            ("ENDPOINT", "name"),
            ("STATE", "state"),
            ("WAITING", "undelivered"),
            ("LAG", "lag"),
            ("DEAD", "dead"),
            ("LAST OK", "success"),
            ("LAST ERROR", "error"),
        ]:
            endpoints.add_column(label, key=key)
        listing = self.query_one("#delivery-table", DataTable)
        for label, key in [
            ("ID", "id"),
            ("CREATED", "created"),
            ("ENDPOINT", "endpoint"),
            ("EVENT", "event"),
            ("STATE", "state"),
            ("TRIES", "attempts"),
            ("HTTP", "http"),
            ("LAST ERROR", "error"),
            ("SHIPMENT", "shipment"),
        ]:
            listing.add_column(label, key=key)
        self.show_endpoints()
        self.show_deliveries()
        self.reload()
        # The cells' colours are the theme's, resolved when drawn: f2 redraws them.
        self.app.theme_changed_signal.subscribe(self, self._redraw)

    def _redraw(self, theme: Any = None) -> None:
        self.show_endpoints()
        self.show_deliveries()

    def on_screen_resume(self) -> None:
        if self.deliveries is not None:  # back from another screen: catch up
            self.reload()

    # --- reading -----------------------------------------------------------------------

    def reload(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.load()

    @work(group="deliveries", exclusive=True, name="Load deliveries", exit_on_error=False)
    async def load(self) -> None:
        """Endpoints and deliveries in one go (a worker: a newer read cancels an older one still waiting)."""
        api = self.console.api
        state = "dead" if self.dead_only else None
        try:
            endpoints, deliveries = await asyncio.gather(
                api.endpoints(), api.deliveries(endpoint=self.endpoint, state=state, limit=LIMIT)
            )
        except ShiptrackError as exc:
            self.error = exc.message
            if self.console.state.connected:  # a dead daemon is the banner's to say, once
                self.notify(exc.message, title="Deliveries", severity="error", timeout=8)
        else:
            self.error = ""
            self.deliveries = deliveries.deliveries
            self.console.state.endpoints = endpoints.endpoints
            self.console.publish_topics({OUTBOUND})  # the dashboard's line too
        self.show_deliveries()
        self._timer = self.set_timer(self.console.refresh_s, self._due)

    def _due(self) -> None:
        self._timer = None
        if self.is_current and self.console.state.connected:  # else resume or reconnect reloads
            self.reload()

    def on_state(self, topics: set[str]) -> None:
        if OUTBOUND in topics:
            self.show_endpoints()
        if CONNECTION in topics and self.console.state.connected and self.is_current:
            self.reload()  # back after a disconnection: catch up

    # --- drawing -------------------------------------------------------------------------

    def show_endpoints(self) -> None:
        endpoints = self.console.state.endpoints
        now, colours = self.console.clock(), self.app.get_css_variables()
        table = self.query_one("#endpoint-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for e in endpoints or []:
            table.add_row(*endpoint_cells(e, now, colours), key=e.name)
        table.move_cursor(row=min(cursor, max(table.row_count - 1, 0)))
        if endpoints is None:
            self.note("#endpoints-note", Content("loading…"))
        elif not endpoints:
            none = "no [[outbound]] endpoints configured: status changes stay in shiptrackd"
            self.note("#endpoints-note", Content(none))
        else:
            self.note("#endpoints-note", None)
        self.show_title()

    def show_deliveries(self) -> None:
        now, colours = self.console.clock(), self.app.get_css_variables()
        table = self.query_one("#delivery-table", DataTable)
        table.clear()
        for d in self.deliveries or []:
            table.add_row(*delivery_cells(d, now, colours), key=str(d.id))
        if self.error:
            self.note("#deliveries-note", Content.styled(f"could not read the deliveries: {self.error}", "$error"))
        elif self.deliveries is None:
            self.note("#deliveries-note", Content("loading…"))
        elif not self.deliveries:
            none = "no deliveries" + (" match the filters (c clears them)" if self.filtered else " yet")
            self.note("#deliveries-note", Content(none))
        else:
            self.note("#deliveries-note", None)
        self.show_title()

    def note(self, selector: str, text: Content | None) -> None:
        """A one-line note in place of rows (empty, loading, an error); None hides it."""
        widget = self.query_one(selector, Static)
        widget.display = text is not None
        widget.update(text or "")

    @property
    def filtered(self) -> bool:
        return self.endpoint is not None or self.dead_only

    def show_title(self) -> None:
        endpoints = self.console.state.endpoints
        head = endpoint_summary(endpoints) if endpoints else "deliveries to the application's webhook endpoints"
        shown = "dead letters" if self.dead_only else "latest deliveries"
        where = f" to {self.endpoint}" if self.endpoint else ""
        count = "" if self.deliveries is None else f" ({number(len(self.deliveries))})"
        self.query_one("#deliveries-title", Static).update(Text(f" {head} · {shown}{where}{count}"))

    # --- keys --------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#endpoint-table")
    def _endpoint_chosen(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value
        if name and name != "none":
            self.endpoint = None if self.endpoint == name else name
            self.reload()

    @on(DataTable.RowSelected, "#delivery-table")
    def _delivery_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a delivery opens the shipment it was about, as enter opens one in the shipments list."""
        chosen = next((d for d in self.deliveries or [] if str(d.id) == event.row_key.value), None)
        if chosen is not None:
            self.app.push_screen(ShipmentDetailScreen(chosen.shipment_id))

    def action_only_endpoint(self) -> None:
        """Only the highlighted endpoint's deliveries; on the endpoint already shown alone, all again."""
        table = self.query_one("#endpoint-table", DataTable)
        if table.row_count:
            table.action_select_cursor()

    def action_toggle_dead(self) -> None:
        self.dead_only = not self.dead_only
        self.reload()

    def action_clear_filters(self) -> None:
        self.endpoint, self.dead_only = None, False
        self.reload()

    def action_reload(self) -> None:
        self.reload()


def endpoint_cells(e: EndpointInfo, now: datetime, colours: dict[str, str]) -> list[Text]:
    """One endpoint as `shiptrackctl endpoints list` shows it."""

    def cell(text: str, key: str | None = None) -> Text:
        return styled_cell(text, key, colours)

    level = ENDPOINT_LEVEL.get(e.state)
    return [
        cell(e.name),
        cell(e.state, level),
        cell(number(e.undelivered)),
        cell(duration(e.lag_s) if e.undelivered else "—"),
        cell(number(e.dead), "critical" if e.dead else None),
        cell(ago(e.last_success_at, now) if e.last_success_at else "never"),
        cell(e.disabled_reason or e.last_error or "—", "error" if e.disabled_reason or e.last_error else None),
    ]


def delivery_cells(d: DeliveryInfo, now: datetime, colours: dict[str, str]) -> list[Text]:
    """One delivery as `shiptrackctl deliveries list` shows it."""

    def cell(text: str, key: str | None = None) -> Text:
        return styled_cell(text, key, colours)

    return [
        cell(str(d.id)),
        cell(ago(d.created_at, now)),
        cell(d.endpoint),
        cell(d.event_type.removeprefix("shipment.")),
        cell(d.state, "critical" if d.state == "dead" else d.state),
        cell(str(d.attempts)),
        cell("—" if d.last_status is None else str(d.last_status)),
        cell(fit(d.last_error, ERROR_W).rstrip()),
        cell(d.shipment_id),
    ]
