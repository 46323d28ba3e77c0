"""
The push receiver: `/hooks/<provider>` on a TCP listener of its own, plus `/healthz`.

Each push goes: body read under the size cap -> the provider's `verify_push` (signature,
timestamp window) -> the replay cache -> the provider's `parse_push` -> the sync writer, in one
transaction that also counts the push, shared with the pushes that arrived meanwhile (group
commit, batch.py), each in its own savepoint. Only then the 2xx: a push the store could not take is
answered 503, so the provider delivers it again. Nothing unverified reaches the store, and every
outcome is counted (`shiptrackd_webhooks_total{outcome}`); rejections are logged a few lines a minute.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from loguru import logger
from starlette.types import ASGIApp, Receive, Scope, Send

from ..api.requests import DaemonStoppingError
from ..api.server import InternalErrors, LogLimiter
from ..clock import Clock
from ..config import Config
from ..errors import StoreError
from ..events import EventBus
from ..models import TrackingInfo
from ..providers.base import Provider
from ..store import FetchSuccess, Store
from ..store.push import PushBatchItem, PushWrite
from ..store.rows import Shipment
from ..sync import cadence
from ..units import parse_size
from ..wire.names import EVENT_SHIPMENT_STATUS_CHANGED
from .batch import GroupCommit
from .state import PushState
from .verify import PushedUpdate, PushRejectedError, ReplayCache, VerifiedPush

REJECTION_LOG_EVERY_S = 20.0  # per outcome: a flood of forgeries costs a few log lines a minute


class PushProvider(Protocol):
    """A provider's push dialect: verify the raw request, then read the parcels it is about."""

    name: str

    async def verify_push(self, headers: Mapping[str, str], raw_body: bytes) -> VerifiedPush:
        """Raise PushRejectedError (with the status to answer) unless the request is genuine and fresh."""
        ...

    def parse_push(self, raw_body: bytes) -> list[PushedUpdate]:
        """The parcels a verified push reports on; PushRejectedError 400 if it cannot be read."""
        ...


class PushReceiver:
    """Verifies, deduplicates and writes pushes; `config` follows reloads."""

    def __init__(
        self,
        *,
        providers: Mapping[str, PushProvider],
        store: Store,
        clock: Clock,
        bus: EventBus,
        config: Config,
        state: PushState,
        account_of: Callable[[Shipment], Provider] | None = None,
    ) -> None:
        """*account_of*: the account that tracks a shipment (SyncEngine.lane_for); None: one account, all of them."""
        self.providers = dict(providers)
        self.account_of = account_of
        self.store = store
        self.clock = clock
        self.bus = bus
        self.config = config
        self.state = state
        self.replays = ReplayCache(config.webhooks.tolerance_s * 2)
        self.group: GroupCommit[PushBatchItem[TrackingInfo], PushWrite] = GroupCommit(store.push.write_batch)
        self._log_limit = LogLimiter(REJECTION_LOG_EVERY_S)

    @property
    def max_body(self) -> int:
        return parse_size(self.config.webhooks.max_body)

    async def receive(self, provider_name: str, headers: Mapping[str, str], raw_body: bytes) -> dict[str, Any]:
        """One push, start to end; raises PushRejectedError with the status to answer."""
        provider = self.providers.get(provider_name)
        if provider is None:
            raise PushRejectedError(
                404, "not_found", f"no receiver for {provider_name[:40]!r}", outcome="unknown_provider"
            )
        verified = await provider.verify_push(headers, raw_body)
        now = self.clock.now()
        self.state.verified(now)
        if verified.replay_key is not None and self.replays.seen(verified.replay_key, now):
            return {"ok": True, "outcome": "duplicate", "matched": 0}
        updates = provider.parse_push(raw_body)
        outcome, matched = await self._write(provider_name, updates)
        if verified.replay_key is not None:
            self.replays.add(verified.replay_key, self.clock.now())  # only once it is committed
        return {"ok": True, "outcome": outcome, "matched": matched}

    def pushes_for(self, provider: PushProvider, shipment: Shipment) -> bool:
        """
        Whether *provider*'s pushes speak for *shipment*: its account tracks it (ShipEngine's hook:
        a ShipEngine account does). Another account's parcel, pushed as this provider saw it, could
        be "not yet in system" and newer than the real history: it would move the status back.
        """
        if self.account_of is None:
            return True
        account = self.account_of(shipment)
        return account.name == provider.name or (provider.name == "shipengine" and account.kind == "shipengine")

    async def _write(self, provider_name: str, updates: list[PushedUpdate]) -> tuple[str, int]:
        now = self.clock.now()
        cad = self.config.sync.cadence
        provider = self.providers[provider_name]

        def decide(shipment: Shipment, info: TrackingInfo) -> FetchSuccess | None:
            """The push's schedule for its shipment, None if another account's (pure: runs on the writer thread)."""
            if not self.pushes_for(provider, shipment):
                return None
            state = (shipment.status_code, shipment.schedule_reason, shipment.created_at, now)
            nxt = cadence.after_push(cad, info.status_code, *state, info.status_detail_code)
            kept = nxt  # a stale push keeps the stored status, and so that status's schedule (store/apply.py)
            if shipment.status_code is not None:
                kept = cadence.after_push(cad, shipment.status_code, *state, shipment.status_detail_code)
            return FetchSuccess(
                shipment.id,
                info,
                nxt.at,
                nxt.reason,
                push_missed=False,
                kept=(shipment.status_code, kept.at, kept.reason),
            )

        pushed = [(u.carrier_code, u.tracking_number, u.info) for u in updates]
        try:
            written = await self.group.submit(PushBatchItem(pushed, now, decide))
        except StoreError as exc:
            raise PushRejectedError(
                503,
                "store_unavailable",
                f"the store cannot take the push now: retry ({exc.code})",
                outcome="store_error",
            ) from exc
        if not written.shipment_ids:
            return "unknown_shipment", 0
        numbers = written.numbers
        applied = written.applied
        for shipment_id, old, new in applied.changed:
            self.state.changes += 1
            self.bus.publish(EVENT_SHIPMENT_STATUS_CHANGED, id=shipment_id, old=old, new=new, via="push")
            logger.bind(loop="push", provider=provider_name).info(
                "push {} ({}) {} -> {}", shipment_id, numbers.get(shipment_id, "?"), old or "new", new
            )
        if not applied.changed:
            outcome = "stale" if applied.stale else "accepted"
        else:
            outcome = "accepted"
        return outcome, len(written.shipment_ids)

    def log_rejection(self, exc: PushRejectedError, provider: str, peer: str) -> None:
        held = self._log_limit.allow(exc.outcome)
        if held is None:
            return
        more = f" ({held} more since the last report)" if held else ""
        logger.bind(loop="push", outcome=exc.outcome).warning(
            "push to /hooks/{} from {} refused {} {}: {}{}",
            provider[:40],
            peer,
            exc.http_status,
            exc.code,
            exc.message,
            more,
        )


async def _read_capped(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    if declared and declared.strip().isdigit() and int(declared) > limit:
        raise PushRejectedError(413, "body_too_large", f"body larger than {limit} bytes", outcome="too_large")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise PushRejectedError(400, "client_disconnected", "the body was cut short", outcome="malformed")
        body += message.get("body", b"")
        if len(body) > limit:
            raise PushRejectedError(413, "body_too_large", f"body larger than {limit} bytes", outcome="too_large")
        if not message.get("more_body", False):
            return bytes(body)


async def _answer(
    send: Send, status: int, content: Any, extra: tuple[tuple[bytes, bytes], ...] = (), *, head: bool = False
) -> None:
    """A JSON answer, as Starlette's JSONResponse renders it (its length but no body to a HEAD)."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _refuse(send: Send, status: int, code: str, message: str, allow: str = "") -> None:
    extra = ((b"allow", allow.encode()),) if allow else ()
    await _answer(send, status, {"error": {"code": code, "message": message}}, extra)


def receiver_app(receiver: PushReceiver) -> ASGIApp:
    """
    The listener's app: `POST /hooks/<provider>` and `GET /healthz`, nothing of the control API.

    A plain ASGI app, not Starlette's router and middleware: a provider's burst costs the loop per
    request, and those layers were a tenth of it (bench/bench_push.py). The answers keep the API's
    shapes: JSON errors, 404/405 with Allow, 403 to a browser page, InternalErrors' 500.
    """

    async def hook(scope: Scope, receive: Receive, send: Send, provider: str) -> None:
        now = receiver.clock.now()
        headers: dict[str, str] = {}
        for name, value in reversed(scope["headers"]):  # the first of a repeated header wins, as in Starlette
            headers[name.decode("latin-1")] = value.decode("latin-1")
        try:
            raw = await _read_capped(receive, headers.get("content-length", "").encode(), receiver.max_body)
            result = await receiver.receive(provider, headers, raw)
        except PushRejectedError as exc:
            receiver.state.count(exc.outcome, now)
            client = scope.get("client")
            receiver.log_rejection(exc, provider, client[0] if client else "?")
            await _refuse(send, exc.http_status, exc.code, exc.message)
            return
        except DaemonStoppingError as exc:  # the body read ended by the daemon's stop
            await _refuse(send, exc.http_status, exc.code, exc.message)
            return
        receiver.state.count(result["outcome"], now)
        await _answer(send, 200, result)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if any(name in (b"origin", b"referer") for name, _ in scope["headers"]):
            await _refuse(send, 403, "forbidden", "requests from web pages are refused")
        elif path.startswith("/hooks/") and path.count("/") == 2 and len(path) > len("/hooks/"):
            if method != "POST":
                await _refuse(send, 405, "method_not_allowed", f"no route {method} {path}", allow="POST")
            else:
                await hook(scope, receive, send, path[len("/hooks/") :])
        elif path == "/healthz":
            if method not in ("GET", "HEAD"):
                await _refuse(send, 405, "method_not_allowed", f"no route {method} {path}", allow="GET, HEAD")
            else:
                healthy = {"ok": True, "providers": sorted(receiver.providers)}
                await _answer(send, 200, healthy, head=method == "HEAD")
        else:
            await _refuse(send, 404, "not_found", f"no route {method} {path}")

    return InternalErrors(app)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: say so, so the server does not log a lifespan error."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
