"""
The connection banner: hidden while the daemon answers, a plain sentence when it does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

from ..format import duration

if TYPE_CHECKING:
    from ..app import ShiptrackApp


class ConnectionBanner(Static):
    """'disconnected — retrying in 4s' with the reason; the screen below keeps the last known state."""

    def on_mount(self) -> None:
        self.refresh_state()

    def refresh_state(self) -> None:
        app: ShiptrackApp = self.app  # type: ignore[assignment]
        state = app.state
        if state.connected:
            self.display = False
            return
        self.display = True
        if not state.disconnect_reason:
            self.update(f"connecting to shiptrackd at {app.socket_label} …")
            return
        left = (state.retry_at - app.clock()).total_seconds() if state.retry_at else 0
        when = f"retrying in {duration(left)}" if left >= 1 else "retrying now"
        kept = " · showing the last known state" if state.ever_connected else ""
        self.update(f"⚠ disconnected — {when}{kept} · {state.disconnect_reason}")
