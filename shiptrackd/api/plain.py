"""
PlainClient: ApiClient's calls with plain JSON data (dicts and lists) instead of wire types.

A bridge for the console while it moves onto the wire types (shiptrackd/wire/): the same calls it
made before ApiClient became typed, each answer checked by its wire type first, then handed over
as the JSON the daemon sent (timestamps as RFC 3339 text).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import msgspec

from .client import ApiClient


def plain(value: object) -> Any:
    return msgspec.to_builtins(value)


class PlainClient:
    def __init__(self, socket_path: Path | str | None = None, *, timeout_s: float = 30.0) -> None:
        self.typed = ApiClient(socket_path, timeout_s=timeout_s)
        self.socket_path = self.typed.socket_path

    async def __aenter__(self) -> PlainClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.typed.aclose()

    async def request(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        return await self.typed.request(method, path, json_body=json_body, params=params)

    async def status(self) -> dict[str, Any]:
        return plain(await self.typed.status())  # type: ignore[no-any-return]

    async def loops(self) -> dict[str, Any]:
        return plain(await self.typed.loops())  # type: ignore[no-any-return]

    async def loop_action(self, name: str, action: str) -> dict[str, Any]:
        return plain(await self.typed.loop_action(name, action))  # type: ignore[no-any-return]

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
        page = await self.typed.shipments(
            status=status, carrier=carrier, search=search, active=active, cursor=cursor, limit=limit
        )
        return plain(page)  # type: ignore[no-any-return]

    async def shipment(self, shipment_id: str) -> dict[str, Any]:
        return plain(await self.typed.shipment(shipment_id))  # type: ignore[no-any-return]

    async def add_shipments(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return plain(await self.typed.add_shipments(records))  # type: ignore[no-any-return]

    async def remove_shipment(self, shipment_id: str) -> dict[str, Any]:
        return plain(await self.typed.remove_shipment(shipment_id))  # type: ignore[no-any-return]

    async def retrack(self, shipment_id: str) -> dict[str, Any]:
        return plain(await self.typed.retrack(shipment_id))  # type: ignore[no-any-return]

    async def why(self, shipment_id: str) -> dict[str, Any]:
        return plain(await self.typed.why(shipment_id))  # type: ignore[no-any-return]

    async def sync(
        self, *, force: bool = False, dry_run: bool = False, shipments: list[str] | None = None
    ) -> dict[str, Any]:
        if dry_run:
            return plain(await self.typed.sync_plan(force=force, shipments=shipments))  # type: ignore[no-any-return]
        return plain(await self.typed.sync(force=force, shipments=shipments))  # type: ignore[no-any-return]

    async def runs(self, limit: int = 20) -> dict[str, Any]:
        return plain(await self.typed.runs(limit))  # type: ignore[no-any-return]

    async def run(self, run_id: int) -> dict[str, Any]:
        return plain(await self.typed.run(run_id))  # type: ignore[no-any-return]

    async def stats(self) -> dict[str, Any]:
        return plain(await self.typed.stats())  # type: ignore[no-any-return]

    async def reload(self) -> dict[str, Any]:
        return plain(await self.typed.reload())  # type: ignore[no-any-return]

    async def backup(self, path: str, *, force: bool = False) -> dict[str, Any]:
        return plain(await self.typed.backup(path, force=force))  # type: ignore[no-any-return]

    async def events(
        self, since: int | None = None, heartbeat_s: float | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        async for line in self.typed.raw_events(since, heartbeat_s):
            yield json.loads(line)

    async def health(
        self,
        *,
        fresh: bool = False,
        alert_threshold: int | None = None,
        check_stale: bool = False,
        stale_limit: int | None = None,
    ) -> dict[str, Any]:
        report = await self.typed.health(
            fresh=fresh, alert_threshold=alert_threshold, check_stale=check_stale, stale_limit=stale_limit
        )
        return plain(report)  # type: ignore[no-any-return]

    async def alert_evaluate(self, wait_s: int | None = None) -> dict[str, Any]:
        return plain(await self.typed.alert_evaluate(wait_s))  # type: ignore[no-any-return]

    async def alert_test(self, wait_s: int | None = None) -> dict[str, Any]:
        return plain(await self.typed.alert_test(wait_s))  # type: ignore[no-any-return]

    async def alerts(self, limit: int = 20) -> dict[str, Any]:
        return plain(await self.typed.alerts(limit))  # type: ignore[no-any-return]

    async def silences(self, include_expired: bool = False) -> dict[str, Any]:
        return plain(await self.typed.silences(include_expired))  # type: ignore[no-any-return]

    async def add_silence(
        self, check: str, *, duration: str | float | None = None, until: str | None = None, comment: str = ""
    ) -> dict[str, Any]:
        silence = await self.typed.add_silence(check, duration=duration, until=until, comment=comment)
        return plain(silence)  # type: ignore[no-any-return]

    async def remove_silence(self, silence_id: int) -> dict[str, Any]:
        return plain(await self.typed.remove_silence(silence_id))  # type: ignore[no-any-return]
