"""
ShipmentList: a lazy, line-API view of the shipments store.

It renders only the lines on screen from a window of API pages (see pages.py), so
opening it costs one page and a 100,000-row store scrolls as smoothly as a 100-row
one; a DataTable would measure every cell of every row first (reference/libraries.md §5).
It never calls the daemon: it posts PageWanted and the screen answers with page_loaded().
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from shiptrackd.wire.answers import Shipment

from ..format import countdown, fit, status_label
from .pages import PagedRows, Row

PREFETCH_ROWS = 200  # start fetching the next page this many rows before the loaded ones run out

# (key, title, width or 0 for flexible, minimum total width at which the column appears)
COLUMNS: list[tuple[str, str, int, int]] = [
    ("mark", "", 1, 0),
    ("id", "ID", 24, 0),
    ("carrier", "CARRIER", 8, 0),
    ("tracking", "TRACKING NUMBER", 0, 0),
    ("status", "STATUS", 14, 0),
    ("next", "NEXT CHECK", 10, 70),
    ("synced", "LAST SYNC", 11, 110),
    ("reference", "REFERENCE", 0, 130),
]
STATUS_CLASS = {"DE": "delivered", "EX": "exception", "AT": "attempt", "IT": "transit", "NY": "waiting"}


@lru_cache(maxsize=32)
def layout_columns(width: int) -> list[tuple[str, str, int]]:
    """The columns that fit *width* cells, flexible ones sharing what the fixed ones leave."""
    chosen = [(key, title, w) for key, title, w, min_total in COLUMNS if width >= min_total]
    fixed = sum(w + 1 for _, _, w in chosen if w)
    flex = [key for key, _, w in chosen if not w]
    spare = max(width - fixed - len(flex), 8 * len(flex))
    share = spare // max(len(flex), 1)
    out = []
    for key, title, w in chosen:
        if not w:
            w = min(share, 32) if key == "tracking" and len(flex) > 1 else share
        out.append((key, title, w))
    if len(flex) > 1:  # give what the capped tracking column left to the reference column
        used = sum(w + 1 for _, _, w in out)
        out[-1] = (out[-1][0], out[-1][1], out[-1][2] + max(0, width - used))
    return out


class ShipmentList(ScrollView, can_focus=True):
    """The shipments, one line each, with a fixed header line; Enter opens one, Space selects it."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "shipment-list--header",
        "shipment-list--cursor",
        "shipment-list--selected",
        "shipment-list--placeholder",
        "shipment-list--delivered",
        "shipment-list--exception",
        "shipment-list--attempt",
        "shipment-list--transit",
        "shipment-list--waiting",
    }
    DEFAULT_CSS = """
    ShipmentList { background: $surface; }
    ShipmentList > .shipment-list--header { text-style: bold; background: $panel; }
    ShipmentList > .shipment-list--cursor { background: $block-cursor-blurred-background; }
    ShipmentList:focus > .shipment-list--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
    }
    ShipmentList > .shipment-list--selected { color: $accent; text-style: bold; }
    ShipmentList > .shipment-list--placeholder { color: $text-muted; }
    ShipmentList > .shipment-list--delivered { color: $success; }
    ShipmentList > .shipment-list--exception { color: $error; }
    ShipmentList > .shipment-list--attempt { color: $warning; }
    ShipmentList > .shipment-list--transit { color: $accent; }
    ShipmentList > .shipment-list--waiting { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "open", "Open"),
        Binding("space", "toggle_select", "Select"),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True)

    class PageWanted(Message):
        """The list needs page `index`, fetched with `cursor` (None for the first page)."""

        def __init__(self, generation: int, index: int, cursor: str | None, limit: int) -> None:
            super().__init__()
            self.generation = generation
            self.index = index
            self.cursor = cursor
            self.limit = limit

    class RowChosen(Message):
        def __init__(self, shipment_id: str) -> None:
            super().__init__()
            self.shipment_id = shipment_id

    class Changed(Message):
        """Rows loaded, selection or cursor changed: time to update the status line."""

    def __init__(self, *, page_size: int = 1000, keep_pages: int = 32, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.page_size = page_size
        self.keep_pages = keep_pages
        self.model = PagedRows(page_size, keep_pages)
        self.generation = 0
        self.selected: set[str] = set()
        self.pending: tuple[int, int] | None = None  # (generation, page) in flight
        self.failed = False
        self._follow_end = False

    # --- feeding ------------------------------------------------------------------

    def reset(self, estimate: int | None = None) -> None:
        """Start over (new filters): forget the pages, keep the selection."""
        self.generation += 1
        self.model = PagedRows(self.page_size, self.keep_pages, estimate)
        self.pending = None
        self.failed = False
        self._follow_end = False
        self.cursor_row = 0
        self.scroll_to(y=0, animate=False)
        self._resize_virtual()
        self.refresh()
        self.want_pages()

    def page_loaded(self, generation: int, index: int, items: list[Shipment], next_cursor: str | None) -> None:
        if generation != self.generation:
            return  # an answer for filters no longer shown
        self.pending = None
        self.failed = False
        self.model.add_page(index, items, next_cursor)
        self._resize_virtual()
        if self._follow_end:
            self._move_to(self.model.row_count - 1, follow_end=True)
        elif self.cursor_row >= self.model.row_count:
            self._move_to(self.model.row_count - 1)
        self.refresh()
        self.post_message(self.Changed())
        self.want_pages()

    def page_failed(self, generation: int) -> None:
        if generation == self.generation:
            self.pending = None
            self.failed = True
            self.refresh()
            self.post_message(self.Changed())

    def retry(self) -> None:
        """Ask again for what is missing (after a reconnect)."""
        self.failed = False
        self.want_pages()

    def want_pages(self) -> None:
        """Ask for the next page the screen needs, one request at a time."""
        if self.pending is not None or self.failed or not self.is_mounted:
            return
        top = int(self.scroll_offset.y)
        bottom = top + max(self.size.height, 1)
        first, last = top // self.page_size, bottom // self.page_size
        wanted = list(range(first, last + 1))
        if (bottom % self.page_size) > self.page_size - PREFETCH_ROWS:
            wanted.append(last + 1)
        if self._follow_end:
            wanted.append((self.model.row_count - 1) // self.page_size)
        self.model.touch(range(first, last + 1))
        step = self.model.next_fetch(wanted)
        if step is not None:
            index, cursor = step
            self.pending = (self.generation, index)
            self.post_message(self.PageWanted(self.generation, index, cursor, self.page_size))

    def update_status(self, shipment_id: str, status: str | None) -> None:
        row = self.model.find(shipment_id)
        if row is not None:
            row.status = status
            self.refresh()

    def more_may_exist(self) -> None:
        self.model.more_may_exist()
        self._resize_virtual()
        self.want_pages()

    # --- queries ------------------------------------------------------------------

    @property
    def current(self) -> Row | None:
        return self.model.row(self.cursor_row)

    @property
    def page_in_flight(self) -> bool:
        """A page request is out. Not `loading`: Textual's Widget.loading disables a widget and drops its focus."""
        return self.pending is not None

    # --- movement -------------------------------------------------------------------

    def _resize_virtual(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.model.row_count + 1)

    def _move_to(self, row: int, *, follow_end: bool = False) -> None:
        self._follow_end = follow_end
        self.cursor_row = max(0, min(row, self.model.row_count - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        visible = max(self.size.height - 1, 1)  # the header line takes one
        top = int(self.scroll_offset.y)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False, immediate=True)
        self.refresh()
        self.want_pages()
        self.post_message(self.Changed())

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.want_pages()

    def on_resize(self, event: events.Resize) -> None:
        self._resize_virtual()
        self.want_pages()

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor_row + delta)

    def action_page(self, delta: int) -> None:
        self._move_to(self.cursor_row + delta * max(self.size.height - 2, 1))

    def action_first(self) -> None:
        self._move_to(0)

    def action_last(self) -> None:
        self._move_to(self.model.row_count - 1, follow_end=not self.model.complete)

    def action_open(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.RowChosen(row.id))

    def action_toggle_select(self) -> None:
        row = self.current
        if row is None:
            return
        self.selected.symmetric_difference_update({row.id})
        self._move_to(self.cursor_row + 1)
        self.post_message(self.Changed())

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            return
        self._move_to(int(self.scroll_offset.y) + event.y - 1)
        if event.chain >= 2:
            self.action_open()

    # --- rendering ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        columns = layout_columns(width)
        if y == 0:
            style = self.get_component_rich_style("shipment-list--header")
            text = " ".join(fit(title, w) for _, title, w in columns)
            return Strip([Segment(text, style)]).adjust_cell_length(width, style)
        index = int(self.scroll_offset.y) + y - 1
        base = self.rich_style
        if index >= self.model.row_count:
            return Strip.blank(width, base)
        row = self.model.row(index)
        if index == self.cursor_row:
            base = base + self.get_component_rich_style("shipment-list--cursor")
        if row is None:
            note = "  could not load; press ctrl+r to retry" if self.failed else "  loading…"
            style = base + self.get_component_rich_style("shipment-list--placeholder")
            return Strip([Segment(note, style)]).adjust_cell_length(width, style)
        segments = self._row_segments(row, columns, base, self.app_now())
        return Strip(segments).adjust_cell_length(width, base)

    def app_now(self) -> datetime:
        clock: Callable[[], datetime] = self.app.clock  # type: ignore[attr-defined]
        return clock()

    def _row_segments(self, row: Row, columns: list[tuple[str, str, int]], base: Style, now: datetime) -> list[Segment]:
        out: list[Segment] = []
        for key, _, w in columns:
            style = base
            if key == "mark":
                chosen = row.id in self.selected
                text = "●" if chosen else " "
                if chosen:
                    style = base + self.get_component_rich_style("shipment-list--selected")
            elif key == "id":
                text = row.id
            elif key == "carrier":
                text = row.carrier
            elif key == "tracking":
                text = row.tracking
            elif key == "status":
                text = f"{row.status or '··'} {status_label(row.status)}"
                if w >= 20 and row.status_description and row.status:
                    text = f"{row.status} {row.status_description}"
                if row.status in STATUS_CLASS:
                    style = base + self.get_component_rich_style(f"shipment-list--{STATUS_CLASS[row.status]}")
            elif key == "next":
                text = countdown(row.next_sync_at, now) if row.active else "done"
                if row.failures:
                    text = f"{text} ×{row.failures}"
            elif key == "synced":
                text = _since(row.last_synced_at, now)
            else:
                text = row.reference
            out.append(Segment(fit(text, w) + " ", style))
        return out


def _since(at: datetime | None, now: datetime) -> str:
    from ..format import ago

    return ago(at, now) if at else "never"
