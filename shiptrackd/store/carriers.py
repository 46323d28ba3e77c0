"""
A shipment's carrier after it was added: the one its provider detected, or an operator's override.

The carrier is half of the (carrier_code, tracking_number) key, so both writes refuse to make
a shipment the twin of another: a detection that would is kept only as `detected_carrier`, an
override that would is a ConflictError naming the other shipment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..errors import ConflictError
from .db import to_db
from .rows import SHIPMENT_COLUMNS, Shipment, shipment_row
from .sql import Backend, Conn

_TWIN = "SELECT id FROM shipments WHERE carrier_code = ? AND tracking_number = ? AND id != ?"


class CarrierStore:
    def __init__(self, db: Backend) -> None:
        self.db = db

    async def set_detected(self, rows: Sequence[tuple[str, str]], now: datetime) -> list[tuple[str, str]]:
        """Store (id, carrier) detected at registration for shipments still 'pending'.

        Returns (id, twin id) for each detection left out because another shipment already
        tracks that carrier and number: its carrier stays "" and the guess is kept in
        detected_carrier, for `why` to show.
        """

        def fn(conn: Conn) -> list[tuple[str, str]]:
            stamp = to_db(now)
            twins: list[tuple[str, str]] = []
            for sid, carrier in rows:
                row = conn.execute("SELECT tracking_number FROM shipments WHERE id = ?", (sid,)).fetchone()
                if row is None:
                    continue
                twin = conn.execute(_TWIN, (carrier, row[0], sid)).fetchone()
                if twin is not None:
                    twins.append((sid, twin[0]))
                    conn.execute(
                        "UPDATE shipments SET detected_carrier = ?, updated_at = ? WHERE id = ?", (carrier, stamp, sid)
                    )
                    continue
                conn.execute(
                    "UPDATE shipments SET carrier_code = ?, carrier_source = 'detected', detected_carrier = ?,"
                    " updated_at = ? WHERE id = ? AND carrier_source = 'pending'",
                    (carrier, carrier, stamp, sid),
                )
            return twins

        return await self.db.write(fn)

    async def set_carrier(self, shipment_id: str, carrier: str, now: datetime) -> Shipment | None:
        """An operator's carrier for a shipment: the row as it was before (None: no such shipment).

        The shipment is due at once and registered again with the new carrier (provider_ref and
        the push subscription are cleared); a detected carrier is kept in detected_carrier.
        """

        def fn(conn: Conn) -> Shipment | None:
            row = conn.execute(f"SELECT {SHIPMENT_COLUMNS} FROM shipments WHERE id = ?", (shipment_id,)).fetchone()
            if row is None:
                return None
            before = shipment_row(row)
            twin = conn.execute(_TWIN, (carrier, before.tracking_number, shipment_id)).fetchone()
            if twin is not None:
                raise ConflictError(f"{twin[0]} already tracks {carrier} {before.tracking_number}")
            stamp = to_db(now)
            conn.execute(
                "UPDATE shipments SET carrier_code = ?, carrier_source = 'set',"
                " detected_carrier = CASE WHEN carrier_source = 'detected' THEN carrier_code ELSE detected_carrier END,"
                " provider_ref = '', subscribed_at = NULL, active = 1, next_sync_at = ?,"
                " schedule_reason = 'carrier set', consecutive_failures = 0, last_error = '', last_error_kind = '',"
                " updated_at = ? WHERE id = ?",
                (carrier, stamp, stamp, shipment_id),
            )
            return before

        return await self.db.write(fn)
