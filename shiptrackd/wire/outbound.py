"""
The wire types of outbound webhooks (issue 11): the payload every endpoint receives, and the
/v1 answers about endpoints and deliveries. msgspec Structs, as in answers.py.
"""

from __future__ import annotations

from datetime import datetime

from .answers import Answer

# --- what a receiver gets (the body of every signed POST) ----------------------------------


class LatestEvent(Answer):
    occurred_at: datetime | None
    status: str | None
    description: str
    event_code: str
    location: str


class ShipmentChange(Answer):
    """`data`: the shipment as it stands after the change, and the status it left."""

    shipment_id: str
    carrier_code: str
    tracking_number: str
    reference: str
    previous_status: str | None
    status: str | None
    status_detail: str | None
    estimated_delivery_at: datetime | None
    latest_event: LatestEvent | None


class WebhookPayload(Answer):
    """`{"type", "timestamp", "data"}`: type is one of config.OUTBOUND_EVENTS."""

    type: str
    timestamp: datetime
    data: ShipmentChange


# --- /v1/endpoints ---------------------------------------------------------------------------


class EndpointInfo(Answer):
    name: str
    url: str  # masked
    state: str  # ok, failing, disabled (by the dispatcher), off (enabled = false)
    events: list[str]
    undelivered: int
    lag_s: float
    dead: int
    disabled_reason: str
    failing_since: datetime | None
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str


class Endpoints(Answer):
    endpoints: list[EndpointInfo]


class EndpointTested(Answer):
    endpoint: str
    ok: bool
    status: int | None
    error: str
    latency_ms: float
    answer: str
    message_id: str


class EndpointEnabled(Answer):
    endpoint: str
    enabled: bool
    was_disabled: bool


# --- /v1/deliveries --------------------------------------------------------------------------


class DeliveryAttempt(Answer):
    attempt: int
    at: datetime
    outcome: str  # delivered, failed, throttled, gone, deferred
    http_status: int | None
    latency_ms: float
    error: str


class DeliveryInfo(Answer):
    id: int
    message_id: str
    endpoint: str
    shipment_id: str
    event_type: str
    created_at: datetime
    state: str  # pending, failed, sending, delivered, dead
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str
    finished_at: datetime | None
    body: str | None = None  # GET /v1/deliveries/{id} only
    attempt_log: list[DeliveryAttempt] | None = None  # GET /v1/deliveries/{id} only


class Deliveries(Answer):
    deliveries: list[DeliveryInfo]


class Retried(Answer):
    retried: int
    ids: list[int] | None = None


class Replayed(Answer):
    endpoint: str
    since: str
    replayed: int
