"""
The sandbox's push side, as ShipEngine does it (reference/tracking-apis.md §1.11, §6.1 items 14-19).

Its own RSA key pair, published at `/jwks`; the `track` webhook registration
(`/v1/environment/webhooks`, one URL per event, 409 on a second); `tracking/start|stop`
subscriptions; and on every change of a subscribed parcel's history, a signed `API_TRACK` POST to
the registered URL: RSA-SHA256 (PKCS#1 v1.5) over `<timestamp>.<raw body>`, base64, with the
three `x-shipengine-*` headers. Pushes stop after DE or EX, as ShipEngine's do. A delivery that is
not answered 2xx is retried `push_retries` times, `push_retry_s` apart.

Fault knobs (`push_faults`, {kind: probability}, seeded): `lost` (never sent), `duplicated` (sent
twice), `reordered` (held back and sent after the parcel's next push), `late_timestamp` (signed
10 minutes in the past), `wrong_key` (signed by a key the JWKS does not hold, under its kid),
`unsigned` (no signature headers).
"""

from __future__ import annotations

import base64
import functools
import json
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shiptrackd.push.jwks import jwk_of
from shiptrackd.sandbox import lifecycle

PUSH_FAULTS = ("lost", "duplicated", "reordered", "late_timestamp", "wrong_key", "unsigned")
KEY_ID = "sandbox-rsa-1"
LATE_BY = timedelta(minutes=10)
# Keys a push's `data` carries: the documented webhook keys (§1.11) plus status_detail_code;
# carrier_code is left out on purpose, so receivers read it from resource_url as they must.
PUSHED_KEYS = (
    "tracking_number", "status_code", "status_description", "status_detail_code", "carrier_detail_code",
    "carrier_status_code", "carrier_status_description", "ship_date", "estimated_delivery_date",
    "actual_delivery_date", "exception_description", "events",
)  # fmt: skip


@functools.cache
def process_key(slot: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key pair per slot per process, made on first use: generating one costs 0.1-1 s."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(key: rsa.RSAPrivateKey, timestamp: str, body: bytes) -> str:
    """ShipEngine's signature: base64 of RSA-SHA256 (PKCS#1 v1.5) over `<timestamp>.<raw body>`."""
    return base64.b64encode(key.sign(timestamp.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_headers(key: rsa.RSAPrivateKey, kid: str, timestamp: str, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-shipengine-rsa-sha256-key-id": kid,
        "x-shipengine-rsa-sha256-signature": sign(key, timestamp, body),
        "x-shipengine-timestamp": timestamp,
    }


def iso_now(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Delivery:
    """One push as sent: tests replay `body` and `headers` byte for byte."""

    url: str
    body: bytes
    headers: dict[str, str]
    tracking_number: str
    status_code: str
    fault: str = ""
    answers: list[int | None] = field(default_factory=list)  # the HTTP status of each attempt (None: no answer)


@dataclass
class Subscription:
    carrier_code: str
    tracking_number: str
    pushed_events: int = -1  # events in the last history pushed (-1: none yet)


class PushSide:
    """Webhook registration, subscriptions and signed pushes for one Sandbox."""

    def __init__(self, *, now: Callable[[], datetime], first_seen: Callable[[str, str], datetime], seed: int) -> None:
        self._now = now  # simulated time: the parcels' lifecycles
        self._first_seen = first_seen
        self.wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # the signed timestamps: real time
        self.kid = KEY_ID
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self.faults: dict[str, float] = {}
        self.retries = 2
        self.retry_s = 0.5
        self.jwks_down = False  # /jwks answers 503 while set (a key-set outage)
        self.deliveries: list[Delivery] = []
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._held: dict[tuple[str, str], Delivery] = {}
        self._wake = anyio.Event()
        self._client: httpx.AsyncClient | None = None

    @property
    def key(self) -> rsa.RSAPrivateKey:
        """The signing key the JWKS publishes (made lazily: most sandboxes never push)."""
        return process_key("published")

    @property
    def rogue_key(self) -> rsa.RSAPrivateKey:
        """A key the JWKS does not hold, for the `wrong_key` fault."""
        return process_key("rogue")

    # --- knobs and routes ------------------------------------------------------------------

    def configure(self, faults: Mapping[str, Any] | None = None, retries: Any = None, retry_s: Any = None) -> None:
        if faults is not None:
            clean = {}
            for kind, rate in faults.items():
                if kind not in PUSH_FAULTS:
                    raise ValueError(f"push_faults: unknown kind {kind!r} (known: {', '.join(PUSH_FAULTS)})")
                if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                    raise ValueError(f"push_faults.{kind}: expected a probability between 0 and 1")
                if rate:
                    clean[kind] = float(rate)
            if sum(clean.values()) > 1 + 1e-9:
                raise ValueError("push_faults: the rates add up to more than 1")
            self.faults = clean
        if retries is not None:
            if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
                raise ValueError("push_retries: expected an integer from 0 to 10")
            self.retries = retries
        if retry_s is not None:
            if isinstance(retry_s, bool) or not isinstance(retry_s, int | float) or not 0 <= retry_s <= 3600:
                raise ValueError("push_retry_s: expected seconds from 0 to 3600")
            self.retry_s = float(retry_s)

    def jwks(self) -> tuple[int, bytes]:
        if self.jwks_down:
            return 503, b'{"message":"unavailable"}'
        return 200, json.dumps({"keys": [jwk_of(self.key.public_key(), self.kid)]}).encode()

    def track_url(self) -> str | None:
        return next((w["url"] for w in self.webhooks.values() if w["event"] == "track"), None)

    def register_webhook(self, body: Any) -> tuple[int, Any]:
        """POST /v1/environment/webhooks: (status, JSON) — 409 when the event already has a URL."""
        if not isinstance(body, dict) or not isinstance(body.get("url"), str) or not body.get("event"):
            return 400, ("request_body_required", "event and url are required")
        if any(w["event"] == body["event"] for w in self.webhooks.values()):
            return 409, ("webhook_event_type_conflict", f"A webhook for the {body['event']} event already exists.")
        webhook_id = f"se-{len(self.webhooks) + 1000}"
        hook = {
            "webhook_id": webhook_id,
            "url": body["url"],
            "event": body["event"],
            "name": body.get("name") or "",
            "headers": body.get("headers") or [],
        }
        self.webhooks[webhook_id] = hook
        return 200, hook

    def update_webhook(self, webhook_id: str, body: Any) -> tuple[int, Any]:
        hook = self.webhooks.get(webhook_id)
        if hook is None:
            return 404, ("invalid_identifier", f"Webhook {webhook_id} was not found.")
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return 400, ("field_value_required", "url is required")
        hook["url"] = body["url"]
        return 204, None

    def start(self, carrier_code: str, tracking_number: str) -> tuple[int, Any]:
        if self.track_url() is None:
            return 400, ("invalid_field_value", "Configure a track webhook before starting tracking.")
        self._first_seen(carrier_code, tracking_number)
        self.subscriptions.setdefault((carrier_code, tracking_number), Subscription(carrier_code, tracking_number))
        self.stats["subscribed"] += 1
        self.wake()
        return 204, None

    def stop(self, carrier_code: str, tracking_number: str) -> tuple[int, Any]:
        if self.subscriptions.pop((carrier_code, tracking_number), None) is not None:
            self.stats["unsubscribed"] += 1
        return 204, None

    def wake(self) -> None:
        """Look for changes now (simulated time moved, a parcel was subscribed)."""
        self._wake.set()

    # --- pushing ---------------------------------------------------------------------------

    async def run(self, base_url: str, tick_s: float = 0.1) -> None:
        """Push changes until cancelled: on every wake, and every `tick_s` while simulated time runs."""
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    with anyio.move_on_after(tick_s):
                        await self._wake.wait()
                    self._wake = anyio.Event()
                    for delivery in self.due(base_url):
                        tg.start_soon(self._deliver, delivery)
        finally:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()

    def due(self, base_url: str) -> list[Delivery]:
        """The pushes owed now: a new history for every subscribed parcel that changed, faults applied."""
        url = self.track_url()
        if url is None:
            return []
        out: list[Delivery] = []
        now = self._now()
        for key, sub in list(self.subscriptions.items()):
            first_seen = self._first_seen(sub.carrier_code, sub.tracking_number)
            body = lifecycle.tracking_body(sub.carrier_code, sub.tracking_number, first_seen_at=first_seen, now=now)
            if len(body["events"]) == sub.pushed_events:
                continue
            sub.pushed_events = len(body["events"])
            if body["status_code"] in ("DE", "EX"):
                del self.subscriptions[key]  # ShipEngine stops by itself after delivery or an exception
            out.extend(self._with_faults(key, self._delivery(url, base_url, body)))
        return out

    def _delivery(self, url: str, base_url: str, body: dict[str, Any]) -> Delivery:
        data = {"label_url": None, **{k: body.get(k) for k in PUSHED_KEYS}}
        query = f"carrier_code={quote(body['carrier_code'])}&tracking_number={quote(body['tracking_number'])}"
        resource = f"{base_url}/v1/tracking?{query}"
        raw = json.dumps({"resource_url": resource, "resource_type": "API_TRACK", "data": data}).encode()
        stamp = iso_now(self.wall_clock())
        return Delivery(
            url, raw, signed_headers(self.key, self.kid, stamp, raw), body["tracking_number"], body["status_code"]
        )

    def _with_faults(self, key: tuple[str, str], delivery: Delivery) -> list[Delivery]:
        kind = self._draw()
        held = self._held.pop(key, None)
        out: list[Delivery] = []
        if kind == "lost":
            delivery.fault = "lost"
            self.deliveries.append(delivery)
            self.stats["lost"] += 1
        elif kind == "reordered" and key in self.subscriptions:
            delivery.fault = "reordered"
            self._held[key] = delivery  # goes out after this parcel's next push
        else:
            if kind in ("late_timestamp", "wrong_key", "unsigned"):
                delivery = self._spoiled(delivery, kind)
            out.append(delivery)
            if kind == "duplicated":
                out.append(Delivery(**{**delivery.__dict__, "answers": [], "fault": "duplicated"}))
        if held is not None:
            out.append(held)
        if key not in self.subscriptions and key in self._held:  # the last push: nothing comes after it
            out.append(self._held.pop(key))
        return out

    def _spoiled(self, delivery: Delivery, kind: str) -> Delivery:
        headers = dict(delivery.headers)
        if kind == "late_timestamp":
            stamp = iso_now(self.wall_clock() - LATE_BY)
            headers = signed_headers(self.key, self.kid, stamp, delivery.body)
        elif kind == "wrong_key":
            headers = signed_headers(self.rogue_key, self.kid, headers["x-shipengine-timestamp"], delivery.body)
        else:
            headers = {"content-type": "application/json"}
        return Delivery(delivery.url, delivery.body, headers, delivery.tracking_number, delivery.status_code, kind)

    def _draw(self) -> str | None:
        roll = self._rng.random()
        for kind, rate in self.faults.items():
            if roll < rate:
                return kind
            roll -= rate
        return None

    async def _deliver(self, delivery: Delivery) -> None:
        """POST one push; retried on anything but a 2xx, `retries` times."""
        self.deliveries.append(delivery)
        if len(self.deliveries) > 10_000:
            del self.deliveries[:5_000]
        assert self._client is not None
        for attempt in range(self.retries + 1):
            if attempt:
                await anyio.sleep(self.retry_s)
            try:
                response = await self._client.post(delivery.url, content=delivery.body, headers=delivery.headers)
                status: int | None = response.status_code
            except httpx.HTTPError:
                status = None
            delivery.answers.append(status)
            self.stats[f"answered_{status}"] += 1
            if status is not None and 200 <= status < 300:
                self.stats["delivered"] += 1
                return
        self.stats["gave_up"] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "track_url": self.track_url(),
            "subscriptions": len(self.subscriptions),
            "faults": self.faults,
            "stats": dict(sorted(self.stats.items())),
            "jwks_down": self.jwks_down,
        }
