"""
The lines of GET /v1/events (NDJSON): a tagged union on `type`, one Struct per event type.

Every event has `seq` (resume with ?since=seq) and `at`, except the heartbeat, which says only
the newest seq. The type names are the constants of names.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from . import names
from .alerting import NoticeCheck, Silence
from .answers import HealthReport, LoopInfo


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, tag_field="type"):
    seq: int


class Heartbeat(Event, tag=names.EVENT_HEARTBEAT):
    """Nothing happened for ?heartbeat= seconds; `seq` is the newest event's."""


class Stamped(Event):
    at: datetime


class Gap(Stamped, tag=names.EVENT_GAP):
    """Events after ?since= fell out of the ring: fetch a snapshot, then follow from `resume_from`."""

    resume_from: int


class LoopChanged(Stamped, tag=names.EVENT_LOOP_CHANGED):
    loop: LoopInfo


class ShipmentsAddedEvent(Stamped, tag=names.EVENT_SHIPMENTS_ADDED):
    count: int
    origin: str | None = None  # the cluster member that made the change, when another one did


class ShipmentsRemoved(Stamped, tag=names.EVENT_SHIPMENTS_REMOVED):
    id: str
    origin: str | None = None


class ShipmentStatusChanged(Stamped, tag=names.EVENT_SHIPMENT_STATUS_CHANGED):
    id: str
    old: str | None
    new: str
    run_id: int | None = None  # None for a change a push brought
    via: str | None = None  # "push" when a provider's webhook brought it, else a poll did
    origin: str | None = None  # the cluster member that wrote it, when another one did


class SyncStartedEvent(Stamped, tag=names.EVENT_SYNC_STARTED):
    run_id: int
    trigger: str
    planned: int | None


class SyncProgressEvent(Stamped, tag=names.EVENT_SYNC_PROGRESS):
    run_id: int
    trigger: str
    started_at: datetime
    planned: int
    done: int
    selected: int
    updated: int
    unchanged: int
    failed: int
    skipped: int
    api_calls: int
    retries: int
    rate_limited: int
    unknown_ids: list[str]
    stop_reason: str


class FinishedRun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The run's record (as GET /v1/runs/{id}), or only id, outcome and stop_reason if it could not be stored."""

    id: int
    outcome: str
    stop_reason: str
    unknown_ids: list[str]
    trigger: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    selected: int | None = None
    updated: int | None = None
    unchanged: int | None = None
    failed: int | None = None
    skipped: int | None = None
    owner: str | None = None  # the cluster member that ran it
    api_calls: int | None = None
    retries: int | None = None
    rate_limited: int | None = None


class SyncFinished(Stamped, tag=names.EVENT_SYNC_FINISHED):
    run: FinishedRun


class ProviderAuthFailed(Stamped, tag=names.EVENT_PROVIDER_AUTH_FAILED):
    run_id: int
    message: str


class ConfigReloaded(Stamped, tag=names.EVENT_CONFIG_RELOADED):
    changed: list[str]
    needs_restart: list[str]


class HealthReported(Stamped, tag=names.EVENT_HEALTH_REPORT):
    report: HealthReport


class AlertQueued(Stamped, tag=names.EVENT_ALERT_QUEUED):
    notification_id: int
    kind: str
    severity: str
    checks: list[NoticeCheck]


class AlertDelivered(Stamped, tag=names.EVENT_ALERT_DELIVERY):
    notification_id: int
    channel: str
    status: str
    attempts: int
    error: str


class SilenceAdded(Stamped, tag=names.EVENT_SILENCE_ADDED):
    silence: Silence


class SilenceRemovedEvent(Stamped, tag=names.EVENT_SILENCE_REMOVED):
    id: int


AnyEvent = (
    Heartbeat
    | Gap
    | LoopChanged
    | ShipmentsAddedEvent
    | ShipmentsRemoved
    | ShipmentStatusChanged
    | SyncStartedEvent
    | SyncProgressEvent
    | SyncFinished
    | ProviderAuthFailed
    | ConfigReloaded
    | HealthReported
    | AlertQueued
    | AlertDelivered
    | SilenceAdded
    | SilenceRemovedEvent
)


def to_event(event: dict[str, Any]) -> AnyEvent:
    """A bus event (a dict) as its wire type; raises msgspec.ValidationError if it does not fit."""
    converted: AnyEvent = msgspec.convert(event, AnyEvent)
    return converted


EVENT_TYPES = frozenset(kind.__struct_config__.tag for kind in AnyEvent.__args__)
