"""
The push channel's answers (issue 10): `GET /v1/webhooks` and `POST /v1/webhooks/setup`. A
shipment's push state (`why`, `stats`) is in answers.py beside the answers it belongs to.
"""

from __future__ import annotations

from datetime import datetime

from .answers import Answer


class JwksState(Answer):
    url: str
    keys: list[str]
    last_error: str | None


class WebhooksStatus(Answer):
    """The push channel; `enabled` false (and only `message`) while [webhooks] listen is unset."""

    enabled: bool
    message: str | None = None
    listen: str | None = None
    public_url: str | None = None
    hook_urls: dict[str, str] | None = None
    jwks: JwksState | None = None
    subscription_failures: int | None = None
    registered_url: str | None = None
    subscribed: int | None = None
    last_push_at: datetime | None = None
    last_hour: dict[str, int] | None = None  # pushes by outcome
    totals: dict[str, int] | None = None  # since start, by outcome
    changes_by_push: int | None = None
    silence: str | None = None  # ok, warning or critical


class WebhookSetup(Answer):
    """What `webhooks setup` did to the provider's track webhook."""

    provider: str
    webhook_id: str | None
    url: str
    action: str  # created, updated or unchanged
    previous_url: str | None = None
