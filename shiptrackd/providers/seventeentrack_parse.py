"""
17TRACK JSON -> TrackingInfo: one `gettrackinfo` accepted item (or a push's `data`), strict only
about what the engine relies on.

`track_info.latest_status` {status, sub_status} gives our status through the status map (an
unknown word is "UN" with the word kept and counted, never an error); the events come from
`track_info.tracking.providers[].events[]`, each dated by `time_utc`, else by `time_iso` (with
its offset), else skipped; `time_metrics.estimated_delivery_date` gives the estimate. A field
of the wrong type raises InvalidResponseError naming it (a history stored wrong is worse than a
failed fetch).
"""

from __future__ import annotations

import json
from typing import Any

from shiptrackd.errors import InvalidResponseError, PushRejectedError
from shiptrackd.models import TrackingEvent, TrackingInfo
from shiptrackd.providers import json_fields as jf
from shiptrackd.providers import seventeentrack_wire as wire
from shiptrackd.providers.base import PushUpdate, StatusMap


def parse_track_info(item: dict[str, Any], status_map: StatusMap, *, fallback_carrier: str = "") -> TrackingInfo:
    """One accepted item {number, carrier, track_info} as a TrackingInfo."""
    number = item.get("number")
    if not isinstance(number, str) or not number:
        raise InvalidResponseError("number: missing", status=200)
    track = _object(item, "track_info")
    latest = _object(track, "latest_status", where="track_info")
    status = _text(latest, "status", "track_info.latest_status")
    sub_status = _text(latest, "sub_status", "track_info.latest_status")
    code, detail = status_map.map(status, sub_status)
    events = _events(track)
    latest_event = track.get("latest_event")
    description = ""
    if isinstance(latest_event, dict):
        description = _text(latest_event, "description", "track_info.latest_event")
    elif events:
        description = events[-1].description
    metrics = track.get("time_metrics")
    estimate = metrics.get("estimated_delivery_date") if isinstance(metrics, dict) else None
    estimated_at = None
    if isinstance(estimate, dict):
        estimated_at = jf.date_time(estimate.get("to"), "estimated_delivery_date.to") or jf.date_time(
            estimate.get("from"), "estimated_delivery_date.from"
        )
    delivered_at = None
    if code == "DE":
        delivered = [e for e in events if e.status_code == "DE"] or events
        delivered_at = delivered[-1].occurred_at if delivered else None
    return TrackingInfo(
        tracking_number=number,
        status_code=code,
        status_description=description or sub_status or status,
        status_detail_code=detail,
        carrier_code=wire.carrier_code(item.get("carrier"), fallback_carrier),
        carrier_status_description=_text(latest, "sub_status_descr", "track_info.latest_status"),
        exception_description=description if code == "EX" else "",
        estimated_delivery_at=estimated_at,
        actual_delivery_at=delivered_at,
        events=tuple(events),
        provider_status=status,
        provider_sub_status=sub_status,
    )


def parse_push(body: bytes, status_map: StatusMap) -> list[PushUpdate]:
    """A verified push: `{"event": ..., "data": {...}}` (data an object, or a list of them) -> updates."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PushRejectedError("17track push: body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise PushRejectedError("17track push: expected an object with an `event`")
    event = payload["event"]
    data = payload.get("data")
    items = data if isinstance(data, list) else [data]
    updates: list[PushUpdate] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("number"), str):
            raise PushRejectedError("17track push: `data` has no `number`")
        carrier = wire.carrier_code(item.get("carrier"))
        if event == wire.EVENT_UPDATED:
            try:
                info = parse_track_info(item, status_map)
            except InvalidResponseError as exc:
                raise PushRejectedError(f"17track push: {exc.message}") from None
            updates.append(PushUpdate(item["number"], carrier, info, event))
        else:  # TRACKING_STOPPED, and events we do not know: nothing to store
            updates.append(PushUpdate(item["number"], carrier, None, event))
    return updates


def _events(track: dict[str, Any]) -> list[TrackingEvent]:
    tracking = track.get("tracking")
    if tracking is None:
        return []
    if not isinstance(tracking, dict):
        raise InvalidResponseError("track_info.tracking: expected an object", status=200)
    providers = tracking.get("providers") or []
    if not isinstance(providers, list):
        raise InvalidResponseError("track_info.tracking.providers: expected a list", status=200)
    out: list[TrackingEvent] = []
    for p, provider in enumerate(providers):
        if not isinstance(provider, dict):
            continue
        raw = provider.get("events") or []
        if not isinstance(raw, list):
            raise InvalidResponseError(f"track_info.tracking.providers[{p}].events: expected a list", status=200)
        for i, item in enumerate(raw):
            where = f"track_info.tracking.providers[{p}].events[{i}]"
            if not isinstance(item, dict):
                raise InvalidResponseError(f"{where}: expected an object", status=200)
            event = _event(item, where)
            if event is not None:
                out.append(event)
    out.sort(key=lambda e: e.occurred_at)  # 17TRACK lists newest first; stable for equal times
    return out


def _event(item: dict[str, Any], where: str) -> TrackingEvent | None:
    occurred_at = jf.date_time(item.get("time_utc"), f"{where}.time_utc") or jf.date_time(
        item.get("time_iso"), f"{where}.time_iso", zoned_only=True
    )
    if occurred_at is None:
        return None
    stage = _text(item, "stage", where)
    sub_status = _text(item, "sub_status", where)
    code = ""
    if stage or sub_status:
        mapped = wire.SUB_STATUSES.get(sub_status) or wire.STATUSES.get(stage)
        code = mapped[0] if mapped else ""
    raw_address = item.get("address")
    address: dict[str, Any] = raw_address if isinstance(raw_address, dict) else {}
    return TrackingEvent(
        occurred_at=occurred_at,
        description=_text(item, "description", where),
        status_code=code,
        event_code=sub_status or stage,
        city=_text(address, "city", f"{where}.address") or _text(item, "location", where),
        state=_text(address, "state", f"{where}.address"),
        postal_code=_text(address, "postal_code", f"{where}.address"),
        country_code=_text(address, "country", f"{where}.address"),
        carrier_status_code=sub_status,
    )


def _object(obj: dict[str, Any], key: str, *, where: str = "") -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        name = f"{where}.{key}" if where else key
        raise InvalidResponseError(f"{name}: expected an object", status=200)
    return value


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidResponseError(f"{where}.{key}: expected a string", status=200)
