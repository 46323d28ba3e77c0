"""
The Sandbox: ShipEngine's tracking endpoints, the fault knobs, and the in-process API tests use.

Each `/v1` request goes: count it -> check the key (401) -> take a rate-limit token (429)
-> validate the query (400) -> forced or random fault -> lifecycle body; every answer is
delayed by `latency_s`. `/_sandbox/*` is the control surface for out-of-process use: no key,
not counted, not delayed, not faulted.
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
from anyio.abc import TaskStatus

from shiptrackd.config import RateLimit, format_rate_limit
from shiptrackd.sandbox import aftership, easypost, faults, lifecycle, seventeen
from shiptrackd.sandbox.control import control_reply, json_bytes
from shiptrackd.sandbox.push import PushSide
from shiptrackd.sandbox.pushes import Pusher
from shiptrackd.sandbox.server import Drop, Reply, Request, listen, serve
from shiptrackd.sandbox.state import SandboxStats, SimClock, TokenBucket, parse_duration, parse_rate_limit
from shiptrackd.units import format_rfc3339, parse_rfc3339

KNOBS = ("api_key", "rate_limit", "burst", "quota_headers", "latency_s", "faults", "seed", "time_scale")
PUSH_KNOBS = ("push_faults", "push_retries", "push_retry_s", "jwks_down")


class Sandbox:
    """A ShipEngine-compatible tracking API; `async with Sandbox().serve() as sb:` puts it on HTTP."""

    def __init__(
        self,
        *,
        api_key: str | None = "TEST_sandbox",
        rate_limit: RateLimit | str | float | None = None,
        burst: float | None = None,
        quota_headers: bool = False,
        latency_s: float = 0.0,
        faults: Mapping[str, float] | None = None,
        seed: int = 0,
        time_scale: float = 1.0,
        start_at: datetime | None = None,
    ) -> None:
        """Args: api_key None accepts any key; rate_limit '50/s' or '200/min' (burst defaults to
        its count); quota_headers sends X-RateLimit-Limit/Remaining/Reset with every answer while a
        rate_limit is set (ShipEngine documents none; AfterShip sends them); time_scale 0
        freezes simulated time so only `advance` moves it."""
        self.stats = SandboxStats()
        self.clock = SimClock(start_at, time_scale)
        self._first_seen: dict[str, datetime] = {}
        self._base_url: str | None = None
        self.api_key: str | None = None
        self.rate_limit: RateLimit | None = None
        self.burst: float | None = None
        self.quota_headers = False
        self.latency_s = 0.0
        self.faults: dict[str, float] = {}
        self.seed = seed
        self._rng = random.Random(seed)
        self._bucket: TokenBucket | None = None
        # The other providers' dialects, each on its own path prefix, sharing clock, stats and faults.
        self.pusher = Pusher(random.Random(seed))
        self.easypost = easypost.EasyPostDialect(lambda: self.clock, self.stats, self.pusher, self._draw_fault)
        self.aftership = aftership.AfterShipDialect(lambda: self.clock, self.stats, self.pusher, self._draw_fault)
        # 17TRACK's dialect under /track/v2.2 (sandbox/seventeen.py): same clock and counters, its own knobs.
        self.seventeen = seventeen.SeventeenTrack(self.stats, self.clock)
        self.push = PushSide(now=lambda: self.clock.now(), first_seen=self._see, seed=seed)
        self.configure(
            api_key=api_key,
            rate_limit=rate_limit,
            burst=burst,
            quota_headers=quota_headers,
            latency_s=latency_s,
            faults=faults or {},
        )

    # --- knobs -------------------------------------------------------------------------

    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime (names in KNOBS and PUSH_KNOBS); validates everything before changing anything."""
        unknown = set(knobs) - set(KNOBS) - set(PUSH_KNOBS)
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))} (known: {', '.join(KNOBS)})")
        rate_limit = parse_rate_limit(knobs["rate_limit"]) if "rate_limit" in knobs else self.rate_limit
        burst = knobs.get("burst", self.burst)
        if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int | float) or burst < 1):
            raise ValueError(f"burst: expected a number >= 1 or null, got {burst!r}")
        latency_s = parse_duration(knobs["latency_s"]) if "latency_s" in knobs else self.latency_s
        rates = faults.validate_rates(knobs["faults"]) if "faults" in knobs else self.faults
        api_key = knobs.get("api_key", self.api_key)
        if api_key is not None and not isinstance(api_key, str):
            raise ValueError("api_key: expected a string or null")
        time_scale = knobs.get("time_scale", self.clock.time_scale)
        if isinstance(time_scale, bool) or not isinstance(time_scale, int | float) or time_scale < 0:
            raise ValueError(f"time_scale: expected a number >= 0, got {time_scale!r}")
        seed = knobs.get("seed", self.seed)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed: expected an integer, got {seed!r}")
        quota_headers = knobs.get("quota_headers", self.quota_headers)
        if not isinstance(quota_headers, bool):
            raise ValueError(f"quota_headers: expected true or false, got {quota_headers!r}")
        jwks_down = knobs.get("jwks_down", self.push.jwks_down)
        if not isinstance(jwks_down, bool):
            raise ValueError(f"jwks_down: expected true or false, got {jwks_down!r}")
        self.push.configure(knobs.get("push_faults"), knobs.get("push_retries"), knobs.get("push_retry_s"))
        self.push.jwks_down = jwks_down

        self.api_key, self.latency_s, self.faults, self.quota_headers = api_key, latency_s, rates, quota_headers
        if "rate_limit" in knobs or "burst" in knobs:
            self.rate_limit, self.burst = rate_limit, burst
            self._bucket = (
                TokenBucket(rate_limit.per_second, burst if burst is not None else rate_limit.count)
                if rate_limit is not None
                else None
            )
        if "seed" in knobs:
            self.seed, self._rng = seed, random.Random(seed)
        if "time_scale" in knobs:
            self.clock.time_scale = float(time_scale)
        # seventeen shares self.clock: a new time_scale applies to both dialects.

    def config(self) -> dict[str, Any]:
        """The knobs as JSON-ready values (the key itself is not echoed)."""
        limit = self.rate_limit
        return {
            "api_key_set": self.api_key is not None,
            "rate_limit": format_rate_limit(limit) if limit else None,
            "burst": self.burst,
            "quota_headers": self.quota_headers,
            "latency_s": self.latency_s,
            "faults": self.faults,
            "seed": self.seed,
            "time_scale": self.clock.time_scale,
            "now": format_rfc3339(self.clock.now()),
            "push": self.push.snapshot(),
        }

    # --- simulated time ----------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0) -> datetime:
        """Move simulated time forward; every shipment's lifecycle moves with it."""
        delta = timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days).total_seconds()
        if delta < 0:
            raise ValueError("simulated time only moves forward")
        now = self.clock.advance(delta)
        self.pusher.wake()  # parcels moved: push what changed
        self.push.wake()  # ShipEngine's pushes (sandbox/push.py)
        return now

    def _see(self, carrier_code: str, tracking_number: str) -> datetime:
        """When the sandbox first saw this parcel (now, if this is the first time): its lifecycle starts there."""
        return self._first_seen.setdefault(f"{carrier_code}\0{tracking_number}", self.clock.now())

    def first_seen_at(self, carrier_code: str, tracking_number: str) -> datetime | None:
        return self._first_seen.get(f"{carrier_code}\0{tracking_number}")

    def story(self) -> dict[str, Any]:
        """Where every parcel's story stands (simulated now, first sightings), JSON-ready for resume_story."""
        return {
            "now": format_rfc3339(self.clock.now()),
            "first_seen": {key: format_rfc3339(at) for key, at in self._first_seen.items()},
            "17track": self.seventeen.registrations(),
        }

    def resume_story(self, story: Mapping[str, Any]) -> None:
        """
        Continue a story saved by story(): simulated time goes on from its `now`, parcels from their first sight.

        Without it a restarted demo rewound: parcels went IT -> NY and most expired (issue 9 item 14).
        Call it before serving: the clock is set to the saved `now` even if that is behind this one's.
        Raises ValueError on a malformed story, changing nothing.
        """
        try:
            now = parse_rfc3339(story["now"])
            seen = {str(key): parse_rfc3339(at) for key, at in dict(story["first_seen"]).items()}
            registrations = dict(story.get("17track") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a sandbox story ({exc})") from None
        self.seventeen.restore(registrations)  # (a story saved before 17TRACK was in the demo has none)
        self.clock = SimClock(now, self.clock.time_scale)
        self.seventeen.clock = self.clock
        self._first_seen = seen

    # --- serving -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the sandbox is not serving; use `async with sandbox.serve():`")
        return self._base_url

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Sandbox]:
        """Serve on host:port (0 picks a free port) for the duration of the block."""
        # The block's own exception is raised after the task group has closed, so callers (and
        # failing test assertions) see it as-is rather than wrapped in an ExceptionGroup.
        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(self.run, host, port)
            try:
                yield self
            except BaseException as exc:
                error = exc
            finally:
                tg.cancel_scope.cancel()
        if error is not None:
            raise error

    async def run(
        self, host: str = "127.0.0.1", port: int = 0, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; `await tg.start(sandbox.run)` returns the base URL once bound."""
        sock = listen(host, port)
        try:
            bound_host, bound_port = sock.getsockname()[:2]
            self._base_url = f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}"
            async with anyio.create_task_group() as tg:
                # Already listening, so clients that connect before serve() runs just queue.
                tg.start_soon(functools.partial(serve, self.handle, sock, on_connect=self.stats.connected))
                await tg.start(self.pusher.run)
                tg.start_soon(self.push.run, self._base_url)
                task_status.started(self._base_url)
        finally:
            sock.close()  # serve() closes it too; closing twice is harmless
            self._base_url = None

    # --- requests ----------------------------------------------------------------------

    async def handle(self, request: Request) -> Reply | Drop:
        request_id = str(uuid.uuid4())
        if request.path.startswith("/_sandbox/17track/"):
            return await self._control_17track(request)
        if request.path.startswith("/_sandbox/"):
            return control_reply(self, request, request_id)
        if request.path.startswith(seventeen.PREFIX + "/"):
            return await self._seventeen(request)
        if request.path == "/jwks" and request.method == "GET":  # public, like ShipEngine's: no key, not counted
            status, body = self.push.jwks()
            return Reply(status, body)
        dialect = self._dialect(request.path)
        self.stats.begin(time.monotonic())
        self.stats.user_agents[request.headers.get("user-agent", "")] += 1
        try:
            if dialect is None:
                outcome = await self._api(request, request_id)
            else:
                outcome = await dialect.handle(request, request_id)
                if self.latency_s and not (isinstance(outcome, Drop) and outcome.kind == "hang"):
                    await anyio.sleep(self.latency_s)
        except BaseException:
            self.stats.end()
            raise
        if isinstance(outcome, Reply):
            if dialect is None:
                outcome.headers.append(("x-shipengine-requestid", request_id))
            self.stats.by_status[outcome.status] += 1
        outcome.on_done = self.stats.end
        return outcome

    def _dialect(self, path: str) -> easypost.EasyPostDialect | aftership.AfterShipDialect | None:
        """The provider dialect a path belongs to; None for ShipEngine's `/v1`."""
        if path.startswith(easypost.PREFIX):
            return self.easypost
        if path.startswith(aftership.PREFIX):
            return self.aftership
        return None

    def _draw_fault(self) -> str | None:
        """A random fault kind for a dialect's request, from the same seeded rates as `/v1`."""
        return faults.random_fault(self._rng, self.faults)

    async def _seventeen(self, request: Request) -> Reply | Drop:
        """A 17TRACK request: counted like any other, delayed by latency_s, answered by its dialect."""
        self.stats.begin(time.monotonic())
        self.stats.user_agents[request.headers.get("user-agent", "")] += 1
        try:
            if self.latency_s:
                await anyio.sleep(self.latency_s)
            outcome = self.seventeen.handle(request)
        except BaseException:
            self.stats.end()
            raise
        if isinstance(outcome, Reply):
            self.stats.by_status[outcome.status] += 1
        outcome.on_done = self.stats.end
        return outcome

    async def _control_17track(self, request: Request) -> Reply:
        """`GET|POST /_sandbox/17track/config` (its knobs) and `POST /_sandbox/17track/push[?all=1]`."""
        route = (request.method, request.path)
        try:
            if route == ("GET", "/_sandbox/17track/config"):
                return Reply(200, json_bytes(self.seventeen.config()))
            if route == ("POST", "/_sandbox/17track/config"):
                knobs = json.loads(request.body or b"{}")
                if not isinstance(knobs, dict):
                    raise ValueError("expected a JSON object of knobs")
                self.seventeen.configure(**knobs)
                return Reply(200, json_bytes(self.seventeen.config()))
            if route == ("POST", "/_sandbox/17track/push"):
                every = request.query.get("all", ["0"])[-1] not in ("0", "false", "")
                sent = await self.seventeen.push(only_changed=not every)
                return Reply(200, json_bytes({"sent": sent}))
        except (ValueError, TypeError, httpx.HTTPError) as exc:
            return Reply(400, json_bytes({"error": {"code": "invalid_request", "message": str(exc)}}))
        return Reply(404, json_bytes({"error": {"code": "not_found", "message": f"no route {request.path}"}}))

    async def _api(self, request: Request, request_id: str) -> Reply | Drop:
        decided = self._decide(request, request_id)
        # The bucket as this request left it (before any latency lets later requests take from it).
        quota = self._bucket.headers() if self.quota_headers and self._bucket is not None else []
        outcome = await self._answer(request, request_id, decided)
        if isinstance(outcome, Reply) and outcome.status != 401:
            outcome.headers.extend(quota)
        return outcome

    async def _answer(self, request: Request, request_id: str, outcome: Reply | str) -> Reply | Drop:
        delay = self.latency_s + (faults.SLOW_EXTRA_S if outcome == "slow" else 0.0)
        if isinstance(outcome, str):
            if outcome == "hang":
                return Drop("hang")
            if delay:
                await anyio.sleep(delay)
            return Drop("reset") if outcome == "reset" else self._tracking(request, request_id, outcome)
        if delay:
            await anyio.sleep(delay)
        return outcome

    def _decide(self, request: Request, request_id: str) -> Reply | str:
        """A finished reply, or for tracking requests the fault kind ("" for none) to act on."""
        key = self.api_key
        if key is not None and request.headers.get("api-key") != key:
            body = faults.error_body(request_id, "unauthorized", "The API key is invalid.", error_type="security")
            return Reply(401, body)
        if self._bucket is not None:
            wait_s = self._bucket.take(time.monotonic())
            if wait_s:
                retry_after = str(max(1, math.ceil(wait_s)))
                return Reply(429, faults.rate_limited_body(request_id), [("retry-after", retry_after)])
        if request.path.startswith(("/v1/environment/webhooks", "/v1/tracking/")):
            return self._push_route(request, request_id)
        if request.method != "GET":
            return _not_found(request, request_id)
        if request.path == "/v1/carriers":
            return Reply(200, json_bytes({"carriers": _CARRIER_LIST, "request_id": request_id, "errors": []}))
        if request.path.startswith("/v1/labels/") and request.path.endswith("/track"):
            label = request.path.split("/")[3]
            message = f"Label {label} was not found."
            return Reply(404, faults.error_body(request_id, "invalid_identifier", message, field_name="label_id"))
        if request.path != "/v1/tracking":
            return _not_found(request, request_id)

        carrier_code = request.query.get("carrier_code", [""])[-1].strip()
        tracking_number = request.query.get("tracking_number", [""])[-1].strip()
        for name, value in (("carrier_code", carrier_code), ("tracking_number", tracking_number)):
            if not value:
                message = f"{name} is required."
                return Reply(400, faults.error_body(request_id, "field_value_required", message, field_name=name))
        if carrier_code not in lifecycle.CARRIERS:
            message = f"carrier_code '{carrier_code[:40]}' is not supported."
            body = faults.error_body(request_id, "invalid_field_value", message, field_name="carrier_code")
            return Reply(400, body)
        self.stats.by_number[tracking_number] += 1
        kind = faults.forced_fault(tracking_number, self.stats.by_number[tracking_number])
        if kind is None:
            kind = faults.random_fault(self._rng, self.faults)
        if kind is None:
            return ""
        self.stats.faults[kind] += 1
        api_key = request.headers.get("api-key", "")
        error = faults.fault_reply(kind, request_id, carrier_code, tracking_number, api_key)
        if error is not None:
            headers = [("retry-after", str(faults.FORCED_RETRY_AFTER_S))] if error[0] == 429 else []
            return Reply(error[0], error[1], headers)
        return kind

    def _push_route(self, request: Request, request_id: str) -> Reply:
        """Webhook registration and tracking/start|stop (reference/tracking-apis.md §1.11)."""
        route, path = request.method, request.path
        result: tuple[int, Any]
        if path == "/v1/environment/webhooks" and route == "GET":
            return Reply(200, json_bytes(list(self.push.webhooks.values())))
        if path == "/v1/environment/webhooks" and route == "POST":
            result = self.push.register_webhook(_body(request))
        elif path.startswith("/v1/environment/webhooks/") and route == "PUT":
            result = self.push.update_webhook(path.rsplit("/", 1)[1], _body(request))
        elif path.startswith("/v1/environment/webhooks/") and route == "DELETE":
            found = self.push.webhooks.pop(path.rsplit("/", 1)[1], None)
            result = (204, None) if found else (404, ("invalid_identifier", "Webhook not found."))
        elif path in ("/v1/tracking/start", "/v1/tracking/stop") and route == "POST":
            carrier = request.query.get("carrier_code", [""])[-1].strip()
            number = request.query.get("tracking_number", [""])[-1].strip()
            if not carrier or not number:
                name = "carrier_code" if not carrier else "tracking_number"
                message = f"{name} is required."
                return Reply(400, faults.error_body(request_id, "field_value_required", message, field_name=name))
            result = self.push.start(carrier, number) if path.endswith("start") else self.push.stop(carrier, number)
        else:
            return _not_found(request, request_id)
        status, data = result
        if status == 204:
            return Reply(204, b"")
        if status >= 400:
            code, message = data if isinstance(data, tuple) else ("unspecified", "error")
            return Reply(status, faults.error_body(request_id, code, message))
        return Reply(status, json_bytes(data))

    def _tracking(self, request: Request, request_id: str, kind: str) -> Reply:
        """The lifecycle body (first sight starts the clock), corrupted if `kind` says so."""
        carrier_code = request.query["carrier_code"][-1].strip()
        tracking_number = request.query["tracking_number"][-1].strip()
        now = self.clock.now()
        first_seen_at = self._first_seen.setdefault(f"{carrier_code}\0{tracking_number}", now)
        body = lifecycle.tracking_body(carrier_code, tracking_number, first_seen_at=first_seen_at, now=now)
        if kind in ("badjson", "badschema", "badevents", "baddate"):
            return Reply(200, faults.corrupt(kind, body))
        return Reply(200, json_bytes(body))


_CARRIER_LIST = [
    {"carrier_id": f"se-{carrier.carrier_id}", "carrier_code": code, "friendly_name": code.replace("_", " ").title()}
    for code, carrier in lifecycle.CARRIERS.items()
]


def _not_found(request: Request, request_id: str) -> Reply:
    # Like ShipEngine's own SDK mock for an unknown route: a code outside the enum plus extra keys.
    body = faults.error_body(
        request_id, "not_found", "The requested resource was not found.", method=request.method, path=request.path
    )
    return Reply(404, body)


def _body(request: Request) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
