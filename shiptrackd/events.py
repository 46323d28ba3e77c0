"""
The event bus: numbered state changes, kept in a ring for `?since=` replays and
fanned out to live subscribers (the TUI, `shiptrackctl sync --wait`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .clock import utcnow
from .wire.names import EVENT_GAP


class EventBus:
    """Publish never blocks: a subscriber that falls `buffer` events behind is cut off and must resume."""

    def __init__(self, history: int = 2000, buffer: int = 1000) -> None:
        self.seq = 0
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        # each live subscription, with what to call if it falls behind and is cut off
        self._subscribers: dict[MemoryObjectSendStream[dict[str, Any]], Callable[[], None] | None] = {}
        self.buffer = buffer

    def publish(self, type: str, at: datetime | None = None, **data: Any) -> dict[str, Any]:
        self.seq += 1
        event = {"seq": self.seq, "type": type, "at": (at or utcnow()).isoformat(), **data}
        self._history.append(event)
        for stream, on_drop in list(self._subscribers.items()):
            try:
                stream.send_nowait(event)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                self._subscribers.pop(stream, None)
                stream.close()
                if on_drop is not None and isinstance(exc, anyio.WouldBlock):
                    on_drop()  # told now: its buffered backlog may never drain if its reader stalled
        return event

    def close(self) -> None:
        """End every subscription (shutdown), so open event streams finish cleanly."""
        for stream in list(self._subscribers):
            stream.close()
        self._subscribers.clear()

    async def subscribe(
        self, since: int | None = None, on_drop: Callable[[], None] | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Events after *since* still in the ring, then live ones; a `gap` event says some were lost."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](self.buffer)
        self._subscribers[send] = on_drop
        try:
            if since is not None and since < self.seq:
                replay = [e for e in self._history if e["seq"] > since]
                if not replay or replay[0]["seq"] > since + 1:
                    yield {"seq": since, "type": EVENT_GAP, "at": utcnow().isoformat(), "resume_from": self.seq}
                last = since
                for event in replay:
                    last = event["seq"]
                    yield event
            else:
                last = self.seq
            async with receive:
                async for event in receive:
                    if event["seq"] > last:
                        last = event["seq"]
                        yield event
        finally:
            self._subscribers.pop(send, None)
            send.close()
            receive.close()  # also when the subscriber leaves during the replay, before `async with receive`
