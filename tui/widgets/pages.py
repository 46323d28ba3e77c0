"""
A window of cursor-paged rows: the model behind the shipments list.

The control API pages by keyset (`cursor` = the last id of the previous page), so
page k can be fetched only once page k-1's cursor is known. This keeps every
cursor seen (a few bytes a page) but only the most recently used pages' rows, so a
store of 100,000 or a million shipments costs at most `keep_pages` pages of memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shiptrackd.wire.answers import Shipment


@dataclass
class Row:
    id: str
    carrier: str
    tracking: str
    reference: str
    status: str | None
    status_description: str
    last_synced_at: datetime | None
    next_sync_at: datetime | None
    active: bool
    failures: int

    @classmethod
    def from_api(cls, item: Shipment) -> Row:
        return cls(
            id=item.id,
            carrier=item.carrier_code,
            tracking=item.tracking_number,
            reference=item.reference,
            status=item.status_code or None,
            status_description=item.status_description or "",
            last_synced_at=item.last_synced_at,
            next_sync_at=item.next_sync_at,
            active=item.active,
            failures=item.consecutive_failures,
        )


class PagedRows:
    def __init__(self, page_size: int = 1000, keep_pages: int = 32, estimate: int | None = None) -> None:
        self.page_size = page_size
        self.keep_pages = keep_pages
        self.estimate = estimate  # a row count from the daemon's stats, when the filter allows one
        self.pages: OrderedDict[int, list[Row]] = OrderedDict()
        self.cursors: list[str | None] = [None]  # cursors[k] fetches page k
        self.complete = False
        self.total: int | None = None  # exact, once the last page has been seen
        self._where: dict[str, tuple[int, int]] = {}

    # --- size and access ----------------------------------------------------------

    @property
    def rows_walked(self) -> int:
        """Rows known to exist before the first unwalked page."""
        if self.complete and self.total is not None:
            return self.total
        return (len(self.cursors) - 1) * self.page_size

    @property
    def row_count(self) -> int:
        """Rows to show: exact when complete, else the estimate or what is known plus a 'loading' row."""
        if self.complete and self.total is not None:
            return self.total
        return max(self.estimate or 0, self.rows_walked + 1)

    def row(self, index: int) -> Row | None:
        page = self.pages.get(index // self.page_size)
        if page is None:
            return None
        offset = index % self.page_size
        return page[offset] if offset < len(page) else None

    def touch(self, pages: Iterable[int]) -> None:
        """Mark pages as recently used, so eviction keeps what is on screen."""
        for k in pages:
            if k in self.pages:
                self.pages.move_to_end(k)

    def find(self, shipment_id: str) -> Row | None:
        where = self._where.get(shipment_id)
        if where is None or where[0] not in self.pages:
            return None
        return self.pages[where[0]][where[1]]

    # --- fetching -----------------------------------------------------------------

    def next_fetch(self, wanted: Iterable[int]) -> tuple[int, str | None] | None:
        """The (page, cursor) to fetch next to fill *wanted* pages: one directly, or the next step of the walk."""
        last_page = None
        if self.complete and self.total is not None:
            last_page = max(0, (self.total - 1) // self.page_size)
        for k in sorted(set(wanted)):
            if k < 0 or (last_page is not None and k > last_page) or k in self.pages:
                continue
            if k < len(self.cursors):
                return k, self.cursors[k]
            if not self.complete:
                walk = len(self.cursors) - 1
                return walk, self.cursors[walk]
        return None

    def add_page(self, index: int, items: list[Shipment], next_cursor: str | None) -> None:
        rows = [Row.from_api(item) for item in items]
        self.pages[index] = rows
        self.pages.move_to_end(index)
        for i, row in enumerate(rows):
            self._where[row.id] = (index, i)
        if index == len(self.cursors) - 1:
            if next_cursor:
                self.cursors.append(next_cursor)
            else:
                self.complete = True
                self.total = index * self.page_size + len(rows)
        while len(self.pages) > self.keep_pages:
            old, dropped = self.pages.popitem(last=False)
            for row in dropped:
                if self._where.get(row.id, (None,))[0] == old:
                    del self._where[row.id]

    def more_may_exist(self) -> None:
        """New shipments were added: they sort last, so re-read the last page and walk on from there."""
        if not self.complete:
            return
        last = len(self.cursors) - 1
        self.pages.pop(last, None)
        self.complete = False
        self.total = None
        if self.estimate is not None:
            self.estimate = None
