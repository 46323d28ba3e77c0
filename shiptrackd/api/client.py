"""
ApiClient: the one way shiptrackctl and shiptrack-tui talk to the daemon.

Imports only httpx (no daemon modules), so the CLI starts fast. A daemon that
does not answer raises DaemonUnavailableError with a message an operator can act on.
"""

from __future__ import annotations

import errno
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import httpx

from ..errors import DaemonUnavailableError, ShiptrackError
from ..paths import default_socket


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

    # The daemon's JSON is not checked against a schema: these only say what each endpoint returns.

    async def _object(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request(method, path, json_body=json_body, params=params))

    async def _array(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self.request(method, path, json_body=json_body, params=params))

    # --- typed calls ------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._object("GET", "/v1/status")

    async def loops(self) -> list[dict[str, Any]]:
        return await self._array("GET", "/v1/loops")

    async def loop_action(self, name: str, action: str) -> dict[str, Any]:
        return await self._object("POST", f"/v1/loops/{name}/{action}")

    async def shipments(
        self,
        *,
        status: str | None = None,
        carrier: str | None = None,
        search: str | None = None,
        active: bool | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        params = {"status": status, "carrier": carrier, "q": search, "cursor": cursor, "limit": limit}
        if active is not None:
            params["active"] = "true" if active else "false"
        return await self._object("GET", "/v1/shipments", params=params)

    async def shipment(self, shipment_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/v1/shipments/{shipment_id}")

    async def add_shipments(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            return await self._object("POST", "/v1/shipments", json_body={"shipments": records})
        except ApiError as exc:
            if exc.http_status == 409 and isinstance(exc.body, dict):
                return exc.body
            raise

    async def remove_shipment(self, shipment_id: str) -> dict[str, Any]:
        return await self._object("DELETE", f"/v1/shipments/{shipment_id}")

    async def retrack(self, shipment_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/v1/shipments/{shipment_id}/retrack")

    async def why(self, shipment_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/v1/shipments/{shipment_id}/why")

    async def sync(
        self, *, force: bool = False, dry_run: bool = False, shipments: list[str] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"force": force, "dry_run": dry_run}
        if shipments is not None:
            body["shipments"] = shipments
        return await self._object("POST", "/v1/sync", json_body=body)

    async def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return await self._array("GET", "/v1/runs", params={"limit": limit})

    async def run(self, run_id: int) -> dict[str, Any]:
        return await self._object("GET", f"/v1/runs/{run_id}")

    async def stats(self) -> dict[str, Any]:
        return await self._object("GET", "/v1/stats")

    async def reload(self) -> dict[str, Any]:
        return await self._object("POST", "/v1/reload")

    async def webhooks(self) -> dict[str, Any]:
        """Push health: registration, subscriptions, pushes in the last hour by outcome, silence."""
        return await self._object("GET", "/v1/webhooks")

    async def webhooks_setup(self) -> dict[str, Any]:
        """Register or update the provider's track webhook at <public_url>/hooks/<provider>."""
        return await self._object("POST", "/v1/webhooks/setup")

    async def backup(self, path: str, *, force: bool = False) -> dict[str, Any]:
        """Have the daemon write a checked copy of its store to *path* (absolute, as the daemon sees it)."""
        return await self._object("POST", "/v1/backup", json_body={"path": path, "force": force})

    async def events(
        self, since: int | None = None, heartbeat_s: float | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Follow the daemon's event stream (NDJSON); ends when the daemon goes away."""
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
                        yield json.loads(line)
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
    ) -> dict[str, Any]:
        """The last health report (`fresh`: run the checks now); `check_stale` adds the stale shipments."""
        params = {
            "fresh": 1 if fresh else None,
            "alert_threshold": alert_threshold,
            "check_stale": 1 if check_stale else None,
            "stale_limit": stale_limit,
        }
        return await self._object("GET", "/v1/health", params=params)

    async def alert_evaluate(self, wait_s: int | None = None) -> dict[str, Any]:
        """Run the checks and apply the alert rules now; waits (up to `wait_s`) for the deliveries."""
        return await self._object("POST", "/v1/alerts/evaluate", params={"wait": wait_s})

    async def alert_test(self, wait_s: int | None = None) -> dict[str, Any]:
        """A test notice to every channel; per channel, whether it was delivered."""
        return await self._object("POST", "/v1/alerts/test", params={"wait": wait_s})

    async def alerts(self, limit: int = 20) -> dict[str, Any]:
        """Recent notifications with their deliveries, each check's alert state, and the channels."""
        return await self._object("GET", "/v1/alerts", params={"limit": limit})

    async def silences(self, include_expired: bool = False) -> list[dict[str, Any]]:
        return await self._array("GET", "/v1/silences", params={"all": 1 if include_expired else None})

    async def add_silence(
        self, check: str, *, duration: str | float | None = None, until: str | None = None, comment: str = ""
    ) -> dict[str, Any]:
        body = {"check": check, "duration": duration, "until": until, "comment": comment}
        return await self._object("POST", "/v1/silences", json_body={k: v for k, v in body.items() if v is not None})

    async def remove_silence(self, silence_id: int) -> dict[str, Any]:
        return await self._object("DELETE", f"/v1/silences/{silence_id}")


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
