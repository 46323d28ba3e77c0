"""
The NDJSON event stream as an ASGI response: every task it needs lives in one task group of its own.

(An async generator holding a task group, handed to StreamingResponse, is closed from another task
when the client leaves or the bus drops it: "exiting a cancel scope in the wrong task", four times.)
A subscriber whose reader stalls is cut off by the bus; the stream then says so once in the log,
ends its answer, and the connection closes (the answer carries `Connection: close`).
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import msgspec
from loguru import logger
from starlette.responses import Response

from ..events import EventBus
from ..wire.events import EVENT_TYPES, to_event
from ..wire.names import EVENT_HEARTBEAT
from .requests import DaemonStoppingError

FINISH_S = 1.0  # how long the last chunk may wait on a client that stopped reading
BUFFER = 16  # events between the bus subscription and the socket writer


class EventStream(Response):
    """Events as JSON lines; a heartbeat line whenever nothing happened for `heartbeat_s`."""

    media_type = "application/x-ndjson"

    def __init__(self, bus: EventBus, since: int | None, heartbeat_s: float) -> None:
        self.bus = bus
        self.since = since
        self.heartbeat_s = heartbeat_s
        self.status_code = 200
        self.background = None
        self.last_seq = since

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson"), (b"connection", b"close")],
            }
        )
        self.last_seq = self.since if self.since is not None else self.bus.seq  # where a resume would start
        left = anyio.Event()
        dropped = anyio.Event()
        events_in, events_out = anyio.create_memory_object_stream[dict[str, Any]](BUFFER)

        async def pump() -> None:
            async with events_in:
                async for event in self.bus.subscribe(self.since, on_drop=dropped.set):
                    await events_in.send(event)

        async def watch_client() -> None:
            try:
                while (await receive())["type"] != "http.disconnect":
                    pass
                left.set()
            except DaemonStoppingError:
                pass  # the server is stopping: end the answer properly
            tg.cancel_scope.cancel()

        async def watch_drop() -> None:
            await dropped.wait()
            logger.warning(
                "event stream dropped: its client fell {} events behind; it may resume with ?since={}",
                self.bus.buffer,
                self.last_seq,
            )
            tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            tg.start_soon(watch_client)
            tg.start_soon(watch_drop)
            await self._write(send, events_out)  # until the bus closes (shutdown)
            tg.cancel_scope.cancel()
        if not left.is_set():
            with anyio.move_on_after(FINISH_S):  # end the chunked body; a stalled reader gets it when it reads
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write(self, send: Any, events: Any) -> None:
        async with events:
            while True:
                line: dict[str, Any] = {"type": EVENT_HEARTBEAT, "seq": self.bus.seq}
                with anyio.move_on_after(self.heartbeat_s):
                    try:
                        line = await events.receive()
                    except anyio.EndOfStream:
                        return
                body = encode_line(line)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                if line["type"] != EVENT_HEARTBEAT:
                    self.last_seq = line["seq"]


_untyped: set[str] = set()  # event types already reported as not fitting their wire type


def encode_line(event: dict[str, Any]) -> bytes:
    """One NDJSON line: the event as its wire type (wire/events.py), timestamps in RFC 3339 with Z.

    An event that does not fit its type (a bug) still goes out as it is, and is logged once per type;
    a type the union does not know yet goes out as it is, quietly.
    """
    if event.get("type") not in EVENT_TYPES:
        return json.dumps(event, default=str).encode() + b"\n"
    try:
        return msgspec.json.encode(to_event(event)) + b"\n"
    except msgspec.ValidationError as exc:
        kind = str(event.get("type"))
        if kind not in _untyped:
            _untyped.add(kind)
            logger.error("event {} does not fit its wire type: {}", kind, exc)
        return json.dumps(event, default=str).encode() + b"\n"
