"""
ApiClient: the one way shiptrackctl and shiptrack-tui talk to the daemon.

Imports only httpx, msgspec and the wire types (no daemon modules), so the CLI starts fast; each
call returns its route's wire type (shiptrackd/wire/), decoded and checked. A daemon that
does not answer raises DaemonUnavailableError with a message an operator can act on.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from ..errors import DaemonUnavailableError, ShiptrackError
from ..paths import default_socket
from ..wire import alerting as walert
from ..wire import answers as wire
from ..wire import outbound as wire_out
from ..wire import push as wire_push
from ..wire import stats as wire_stats
from ..wire.events import AnyEvent
from ..wire.requests import ReplayBody, RetryDeadBody, SetCarrierBody

T = TypeVar("T")


class ApiError(ShiptrackError):
    """The daemon answered with an error; carries its code, message and HTTP status."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(message, code=code)
        self.http_status = status
        self.body = body


class ApiClient:
    def __init__(self, socket_path: Path | str | None = None, *, timeout_s: float = 30.0) -> None:
        self.socket_path = Path(socket_path) if socket_path else default_socket()
        self._http = httpx.AsyncClient(
            # verify=False: no TLS on a Unix socket, and loading the CA bundle costs 20-45 ms a command.
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket_path), verify=False),
            base_url="http://shiptrackd",
            timeout=httpx.Timeout(timeout_s),
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing -------------------------------------------------------------------

    def _unavailable(self, exc: Exception) -> DaemonUnavailableError:
        cause = _root_os_error(exc)
        number = getattr(cause, "errno", None)
        where = self.socket_path
        if number == errno.EACCES or isinstance(cause, PermissionError):
            msg = f"permission denied on {where}; add yourself to group 'shiptrack' (then log in again)"
            error = DaemonUnavailableError(msg, code="permission_denied")
        elif number == errno.ECONNREFUSED:
            error = DaemonUnavailableError(
                f"shiptrackd is not running at {where} (connection refused: stale socket).  systemctl status shiptrackd"
            )
        elif isinstance(exc, httpx.TimeoutException):
            error = DaemonUnavailableError(
                f"shiptrackd at {where} did not answer in time; it may be starting or stopping"
            )
        else:
            error = DaemonUnavailableError(
                f"shiptrackd is not running at {where} (socket missing).  systemctl status shiptrackd"
            )
        return error

    async def request(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, path, json=json_body, params=clean)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise self._unavailable(exc) from None
        except httpx.TimeoutException as exc:
            raise self._unavailable(exc) from None
        return _decode(response)

    async def _get(
        self,
        kind: type[T],
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> T:
        """The answer decoded into its wire type: a field the type does not name, or a wrong one, raises."""
        body = await self.request(method, path, json_body=json_body, params=params)
        try:
            return msgspec.convert(body, kind)
        except msgspec.ValidationError as exc:
            raise ApiError(200, "unexpected_answer", f"{method} {path}: {exc}", body) from None

    # --- typed calls: each returns the route's wire type (shiptrackd/wire/) --------------------

    async def status(self) -> wire.Status:
        return await self._get(wire.Status, "GET", "/v1/status")

    async def loops(self) -> wire.LoopList:
        return await self._get(wire.LoopList, "GET", "/v1/loops")

    async def loop_action(self, name: str, action: str) -> wire.LoopInfo:
        """The loop after the action; a trigger answers a LoopTriggered (did it start a run or join one)."""
        body = await self.request("POST", f"/v1/loops/{name}/{action}")
        kind = wire.LoopTriggered if isinstance(body, dict) and "triggered" in body else wire.LoopInfo
        return msgspec.convert(body, kind)

    async def shipments(
        self,
        *,
        status: str | None = None,
        carrier: str | None = None,
        search: str | None = None,
        active: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> wire.ShipmentPage:
        params = {"status": status, "carrier": carrier, "q": search, "cursor": cursor, "limit": limit}
        if active is not None:
            params["active"] = "true" if active else "false"
        return await self._get(wire.ShipmentPage, "GET", "/v1/shipments", params=params)

    async def shipment(self, shipment_id: str) -> wire.ShipmentDetail:
        return await self._get(wire.ShipmentDetail, "GET", f"/v1/shipments/{shipment_id}")

    async def add_shipments(self, records: list[dict[str, Any]]) -> wire.ShipmentsAdded:
        try:
            return await self._get(wire.ShipmentsAdded, "POST", "/v1/shipments", json_body={"shipments": records})
        except ApiError as exc:
            if exc.http_status == 409 and isinstance(exc.body, dict):
                return msgspec.convert({k: v for k, v in exc.body.items() if k != "error"}, wire.ShipmentsAdded)
            raise

    async def remove_shipment(self, shipment_id: str) -> wire.ShipmentRemoved:
        return await self._get(wire.ShipmentRemoved, "DELETE", f"/v1/shipments/{shipment_id}")

    async def retrack(self, shipment_id: str) -> wire.Why:
        return await self._get(wire.Why, "POST", f"/v1/shipments/{shipment_id}/retrack")

    async def set_carrier(self, shipment_id: str, carrier_code: str) -> wire.ShipmentDetail:
        """Override a shipment's carrier (a wrong detection); the shipment as it is now."""
        body = msgspec.to_builtins(SetCarrierBody(carrier_code=carrier_code))
        return await self._get(wire.ShipmentDetail, "POST", f"/v1/shipments/{shipment_id}/carrier", json_body=body)

    async def why(self, shipment_id: str) -> wire.Why:
        return await self._get(wire.Why, "GET", f"/v1/shipments/{shipment_id}/why")

    async def sync(self, *, force: bool = False, shipments: list[str] | None = None) -> wire.SyncStarted:
        """Start a run (or join the one going); follow it with events() or run()."""
        return await self._get(wire.SyncStarted, "POST", "/v1/sync", json_body=_sync_body(force, False, shipments))

    async def sync_plan(self, *, force: bool = False, shipments: list[str] | None = None) -> wire.SyncPlan:
        """What a run would sync, and why; nothing is synced."""
        return await self._get(wire.SyncPlan, "POST", "/v1/sync", json_body=_sync_body(force, True, shipments))

    async def runs(self, limit: int = 20) -> wire.RunList:
        return await self._get(wire.RunList, "GET", "/v1/runs", params={"limit": limit})

    async def run(self, run_id: int) -> wire.RunDetail:
        return await self._get(wire.RunDetail, "GET", f"/v1/runs/{run_id}")

    async def stats(self) -> wire_stats.Stats:
        return await self._get(wire_stats.Stats, "GET", "/v1/stats")

    async def reload(self) -> wire.Reloaded:
        return await self._get(wire.Reloaded, "POST", "/v1/reload")

    async def webhooks(self) -> wire_push.WebhooksStatus:
        """Push health: registration, subscriptions, pushes in the last hour by outcome, silence."""
        return await self._get(wire_push.WebhooksStatus, "GET", "/v1/webhooks")

    async def webhooks_setup(self) -> wire_push.WebhookSetup:
        """Register or update the provider's track webhook at <public_url>/hooks/<provider>."""
        return await self._get(wire_push.WebhookSetup, "POST", "/v1/webhooks/setup")

    async def endpoints(self) -> wire_out.Endpoints:
        """Each [[outbound]] endpoint: state, undelivered rows, lag, dead letters, last error."""
        return await self._get(wire_out.Endpoints, "GET", "/v1/endpoints")

    async def deliveries(
        self, *, endpoint: str | None = None, state: str | None = None, limit: int = 100
    ) -> wire_out.Deliveries:
        """Deliveries to the application's endpoints, newest first (`state="dead"`: the dead letters)."""
        params = {"endpoint": endpoint, "state": state, "limit": limit}
        return await self._get(wire_out.Deliveries, "GET", "/v1/deliveries", params=params)

    async def test_endpoint(self, name: str) -> wire_out.EndpointTested:
        """A signed ping to endpoint *name* now, and how it answered (`ok` false: it failed, not an error)."""
        return await self._get(wire_out.EndpointTested, "POST", f"/v1/endpoints/{name}/test")

    async def enable_endpoint(self, name: str) -> wire_out.EndpointEnabled:
        """Enable *name* again after the dispatcher disabled it (a 410, disable_after)."""
        return await self._get(wire_out.EndpointEnabled, "POST", f"/v1/endpoints/{name}/enable")

    async def delivery(self, delivery_id: int) -> wire_out.DeliveryInfo:
        """One delivery with its body and attempt_log."""
        return await self._get(wire_out.DeliveryInfo, "GET", f"/v1/deliveries/{delivery_id}")

    async def retry_delivery(self, delivery_id: int) -> wire_out.Retried:
        """Send a waiting or dead delivery again now, under the same webhook-id."""
        return await self._get(wire_out.Retried, "POST", f"/v1/deliveries/{delivery_id}/retry")

    async def retry_dead_deliveries(self, endpoint: str | None = None) -> wire_out.Retried:
        """Send every dead delivery (only *endpoint*'s, if given) again."""
        body = msgspec.to_builtins(RetryDeadBody(dead=True, endpoint=endpoint or None))
        return await self._get(wire_out.Retried, "POST", "/v1/deliveries/retry", json_body=body)

    async def replay_deliveries(self, endpoint: str, since: str | float) -> wire_out.Replayed:
        """Enqueue again, under new webhook-ids, what was sent to *endpoint* since a time ago ("2h", or seconds)."""
        since_text = since if isinstance(since, str) else f"{since:g}s"
        body = msgspec.to_builtins(ReplayBody(endpoint=endpoint, since=since_text))
        return await self._get(wire_out.Replayed, "POST", "/v1/deliveries/replay", json_body=body)

    async def backup(self, path: str, *, force: bool = False) -> wire.BackupWritten:
        """Have the daemon write a checked copy of its store to *path* (absolute, as the daemon sees it)."""
        return await self._get(wire.BackupWritten, "POST", "/v1/backup", json_body={"path": path, "force": force})

    async def events(
        self, since: int | None = None, heartbeat_s: float | None = None
    ) -> AsyncGenerator[AnyEvent, None]:
        """Follow the daemon's event stream (NDJSON), each line as its wire type; ends when the daemon goes away."""
        async for line in self.raw_events(since, heartbeat_s):
            yield msgspec.json.decode(line, type=AnyEvent)

    async def raw_events(self, since: int | None = None, heartbeat_s: float | None = None) -> AsyncGenerator[str, None]:
        """The event stream's lines as the daemon sends them (JSON text)."""
        params: dict[str, Any] = {}
        if since is not None:
            params["since"] = since
        if heartbeat_s is not None:
            params["heartbeat"] = heartbeat_s
        try:
            async with self._http.stream("GET", "/v1/events", params=params, timeout=httpx.Timeout(None)) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    _decode(resp)
                async for line in resp.aiter_lines():
                    if line.strip():
                        yield line
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._unavailable(exc) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise DaemonUnavailableError(f"lost the connection to shiptrackd at {self.socket_path}") from exc

    # --- health, alerts, silences (shiptrackctl health/alert/alerts/silence, the TUI) ----------

    async def health(
        self,
        *,
        fresh: bool = False,
        alert_threshold: int | None = None,
        check_stale: bool = False,
        stale_limit: int | None = None,
    ) -> wire.HealthReport:
        """The last health report (`fresh`: run the checks now); `check_stale` adds the stale shipments."""
        params = {
            "fresh": 1 if fresh else None,
            "alert_threshold": alert_threshold,
            "check_stale": 1 if check_stale else None,
            "stale_limit": stale_limit,
        }
        return await self._get(wire.HealthReport, "GET", "/v1/health", params=params)

    async def alert_evaluate(self, wait_s: int | None = None) -> walert.Evaluated:
        """Run the checks and apply the alert rules now; waits (up to `wait_s`) for the deliveries."""
        return await self._get(walert.Evaluated, "POST", "/v1/alerts/evaluate", params={"wait": wait_s})

    async def alert_test(self, wait_s: int | None = None) -> walert.TestSent:
        """A test notice to every channel; per channel, whether it was delivered."""
        return await self._get(walert.TestSent, "POST", "/v1/alerts/test", params={"wait": wait_s})

    async def alerts(self, limit: int = 20) -> walert.Alerts:
        """Recent notifications with their deliveries, each check's alert state, and the channels."""
        return await self._get(walert.Alerts, "GET", "/v1/alerts", params={"limit": limit})

    async def silences(self, include_expired: bool = False) -> walert.SilenceList:
        params = {"all": 1 if include_expired else None}
        return await self._get(walert.SilenceList, "GET", "/v1/silences", params=params)

    async def add_silence(
        self, check: str, *, duration: str | float | None = None, until: str | None = None, comment: str = ""
    ) -> walert.Silence:
        body = {"check": check, "duration": duration, "until": until, "comment": comment}
        clean = {k: v for k, v in body.items() if v is not None}
        return await self._get(walert.Silence, "POST", "/v1/silences", json_body=clean)

    async def remove_silence(self, silence_id: int) -> walert.SilenceRemoved:
        return await self._get(walert.SilenceRemoved, "DELETE", f"/v1/silences/{silence_id}")


def _sync_body(force: bool, dry_run: bool, shipments: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"force": force, "dry_run": dry_run}
    if shipments is not None:
        body["shipments"] = shipments
    return body


def _root_os_error(exc: BaseException) -> BaseException:
    """The OSError under httpx's wrappers (it nests the socket's error two or three deep)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return exc


def _decode(response: httpx.Response) -> Any:
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    if response.is_success:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raise ApiError(response.status_code, str(error.get("code")), str(error.get("message")), body)
    raise ApiError(response.status_code, "http_error", f"HTTP {response.status_code}: {response.text[:200]}", body)
