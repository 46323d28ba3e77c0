"""
The event bus: numbered state changes, kept in a ring for `?since=` replays and
fanned out to live subscribers (the TUI, `shiptrackctl sync --wait`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .clock import utcnow


class EventBus:
    """Publish never blocks: a subscriber that falls `buffer` events behind is cut off and must resume."""

    def __init__(self, history: int = 2000, buffer: int = 1000) -> None:
        self.seq = 0
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._subscribers: set[MemoryObjectSendStream[dict[str, Any]]] = set()
        self._buffer = buffer

    def publish(self, type: str, at: datetime | None = None, **data: Any) -> dict[str, Any]:
        self.seq += 1
        event = {"seq": self.seq, "type": type, "at": (at or utcnow()).isoformat(), **data}
        self._history.append(event)
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(event)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(stream)
                stream.close()
        return event

    def close(self) -> None:
        """End every subscription (shutdown), so open event streams finish cleanly."""
        for stream in list(self._subscribers):
            stream.close()
        self._subscribers.clear()

    async def subscribe(self, since: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Events after *since* still in the ring, then live ones; a `gap` event says some were lost."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](self._buffer)
        self._subscribers.add(send)
        try:
            if since is not None and since < self.seq:
                replay = [e for e in self._history if e["seq"] > since]
                if not replay or replay[0]["seq"] > since + 1:
                    yield {"seq": since, "type": "gap", "at": utcnow().isoformat(), "resume_from": self.seq}
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
            self._subscribers.discard(send)
            send.close()
            receive.close()  # also when the subscriber leaves during the replay, before `async with receive`
