"""
The shipments screen: the whole store, filtered by status and carrier and searched
by id, tracking number or reference, paged from the control API into a lazy list.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Select

from shiptrackd.wire import events as ev
from shiptrackd.wire.names import NO_STATUS, STATUS_NAMES

from ..events import ConsoleEvent
from ..format import number
from ..messages import SyncRequested
from ..state import SHIPMENTS
from ..widgets.shipment_list import ShipmentList
from .base import TICK, ConsoleScreen
from .detail import ShipmentDetailScreen

SEARCH_DEBOUNCE_S = 0.3


class StatusLine(Widget):
    """One line of text that redraws without a layout pass (it changes on every cursor move)."""

    text: reactive[str] = reactive("", layout=False)

    def render(self) -> str:
        return self.text


STATUS_OPTIONS = [(f"{code} {name}", code) for code, name in STATUS_NAMES.items()] + [("new (never synced)", NO_STATUS)]


class ShipmentsScreen(ConsoleScreen):
    TITLE = "Shipments"
    AUTO_FOCUS = "#shipment-list"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "Search"),
        Binding("y", "sync_selected", "Sync selected"),
        Binding("c", "clear_filters", "Clear filters"),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "focus_list", "List", show=False),
    ]

    def __init__(self, *, page_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size  # None: the app's page_size
        self._search_timer: Timer | None = None
        self._carriers: list[str] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="filters"):
            yield Input(placeholder="/ search: id, tracking number, reference", id="search", compact=True)
            yield Select(STATUS_OPTIONS, prompt="any status", id="status-filter", compact=True)
            yield Select([], prompt="any carrier", id="carrier-filter", compact=True)
        yield ShipmentList(page_size=self.page_size or self.console.page_size, id="shipment-list")
        yield StatusLine(id="list-status")

    def on_mount(self) -> None:
        super().on_mount()
        self._update_carriers()
        self.query_one(ShipmentList).focus()
        self.reload()

    # --- filters -----------------------------------------------------------------

    def filters(self) -> dict[str, Any]:
        status = self.query_one("#status-filter", Select).value
        carrier = self.query_one("#carrier-filter", Select).value
        search = self.query_one("#search", Input).value.strip()
        return {
            "status": status if isinstance(status, str) else None,
            "carrier": carrier if isinstance(carrier, str) else None,
            "search": search or None,
        }

    def estimate(self, filters: dict[str, Any]) -> int | None:
        """A row count the daemon already told us, when one fits the filters (None: unknown until walked)."""
        state = self.console.state
        if filters["search"] or (filters["status"] and filters["carrier"]):
            return None
        if filters["status"] or filters["carrier"]:
            if state.stats is None:
                return None
            figures = state.stats.shipments
            by = figures.by_status if filters["status"] else figures.by_carrier
            return by.get(filters["status"] or filters["carrier"], 0)
        counts = state.store_counts()
        return None if counts is None else counts[0]

    def reload(self) -> None:
        self.workers.cancel_group(self, "pages")
        self.query_one(ShipmentList).reset(self.estimate(self.filters()))
        self._update_status_line()

    @on(Input.Changed, "#search")
    def _search_changed(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DEBOUNCE_S, self.reload)

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self.reload()
        self.query_one(ShipmentList).focus()

    @on(Select.Changed)
    def _select_changed(self) -> None:
        self.reload()

    def _update_carriers(self) -> None:
        stats = self.console.state.stats
        by_carrier = stats.shipments.by_carrier if stats is not None else {}
        carriers = sorted(c for c in by_carrier if c and c != "none")
        if carriers != self._carriers:
            select = self.query_one("#carrier-filter", Select)
            current = select.value
            self._carriers = carriers
            with self.prevent(Select.Changed):
                select.set_options([(c, c) for c in carriers])
                if isinstance(current, str) and current in carriers:
                    select.value = current

    # --- paging --------------------------------------------------------------------

    @on(ShipmentList.PageWanted)
    def _page_wanted(self, message: ShipmentList.PageWanted) -> None:
        self.run_worker(
            self._fetch_page(message.generation, message.index, message.cursor, message.limit),
            group="pages",
            name="Load shipments",
            exit_on_error=False,
        )

    async def _fetch_page(self, generation: int, index: int, cursor: str | None, limit: int) -> None:
        listing = self.query_one(ShipmentList)
        try:
            page = await self.console.api.shipments(**self.filters(), cursor=cursor, limit=limit)
        except Exception:
            listing.page_failed(generation)
            raise
        listing.page_loaded(generation, index, page.shipments, page.next_cursor)

    @on(ShipmentList.Changed)
    def _list_changed(self) -> None:
        self._update_status_line()

    def _update_status_line(self) -> None:
        listing = self.query_one(ShipmentList)
        model = listing.model
        if model.complete:
            count = f"{number(model.total)} shipments"
        elif model.estimate is not None:
            count = f"{number(model.estimate)} shipments"
        else:
            count = f"{number(model.rows_walked)}+ shipments"
        parts = [count, f"row {number(min(listing.cursor_row + 1, model.row_count))}"]
        active = {k: v for k, v in self.filters().items() if v}
        if active:
            parts.append("filter " + " ".join(f"{k}={v}" for k, v in active.items()))
        if listing.selected:
            parts.append(f"{len(listing.selected)} selected (y syncs them)")
        if listing.page_in_flight:
            parts.append("loading…")
        elif listing.failed:
            parts.append("could not load: ctrl+r retries")
        self.query_one(StatusLine).text = " · ".join(parts)

    # --- live updates --------------------------------------------------------------------

    def on_state(self, topics: set[str]) -> None:
        if SHIPMENTS in topics:
            self._update_carriers()
        if "connection" in topics and self.console.state.connected:
            self.query_one(ShipmentList).retry()
        if TICK in topics:
            self.query_one(ShipmentList).refresh()

    def on_daemon_event(self, event: ConsoleEvent) -> None:
        listing = self.query_one(ShipmentList)
        if isinstance(event, ev.ShipmentStatusChanged):
            listing.update_status(event.id, event.new)
        elif isinstance(event, ev.ShipmentsAddedEvent):
            listing.more_may_exist()

    # --- actions -------------------------------------------------------------------

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_list(self) -> None:
        self.query_one(ShipmentList).focus()

    def action_clear_filters(self) -> None:
        with self.prevent(Select.Changed, Input.Changed):
            self.query_one("#search", Input).value = ""
            self.query_one("#status-filter", Select).clear()
            self.query_one("#carrier-filter", Select).clear()
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_sync_selected(self) -> None:
        listing = self.query_one(ShipmentList)
        ids = sorted(listing.selected)
        if not ids and listing.current is not None:
            ids = [listing.current.id]
        if ids:
            self.post_message(SyncRequested(shipments=ids))
        else:
            self.notify("select shipments with space first", severity="warning")

    @on(ShipmentList.RowChosen)
    def _open(self, message: ShipmentList.RowChosen) -> None:
        self.app.push_screen(ShipmentDetailScreen(message.shipment_id))
