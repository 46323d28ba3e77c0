"""The shape of the /v1 answers about alerts: notifications and their deliveries, alert state, silences."""

from __future__ import annotations

from datetime import datetime

from .answers import Answer


class NoticeCheck(Answer):
    """One check a notification is about."""

    check: str
    kind: str  # firing, repeat, escalated, resolved
    level: str


class DeliveryBrief(Answer):
    channel: str
    status: str  # pending, sending, sent, failed
    attempts: int
    error: str
    finished_at: datetime | None


class Notification(Answer):
    id: int
    created_at: datetime
    kind: str
    severity: str
    checks: list[NoticeCheck]
    title: str
    body: str
    deliveries: list[DeliveryBrief]


class Delivery(Answer):
    id: int
    channel: str
    status: str
    attempts: int
    error: str
    claimed_at: datetime | None
    finished_at: datetime | None


class AlertStateInfo(Answer):
    check: str
    level: str
    firing: bool
    notified_level: str | None
    failing_streak: int
    passing_streak: int
    fired_at: datetime | None
    last_notified_at: datetime | None
    message: str


class ChannelInfo(Answer):
    channel: str  # the channel's name, never its URL
    tags: list[str]
    usable: bool


class Alerts(Answer):
    """GET /v1/alerts: recent notifications (newest first), each check's alert state, the channels."""

    notifications: list[Notification]
    states: list[AlertStateInfo]
    channels: list[ChannelInfo]


class Decision(Answer):
    check: str
    kind: str
    severity: str
    held: str = ""  # why it was not sent


class ReportBrief(Answer):
    id: int | None
    at: datetime
    level: str
    summary: str


class Evaluated(Answer):
    """POST /v1/alerts/evaluate: the report just taken, what the rules sent or held, and the deliveries."""

    report: ReportBrief
    notification_id: int | None
    sent: list[Decision]
    held: list[Decision]
    deliveries: list[Delivery]
    states: list[AlertStateInfo]


class TestSent(Answer):
    """POST /v1/alerts/test: per channel, whether the test notice arrived (within ?wait=)."""

    notification_id: int
    deliveries: list[Delivery]
    delivered: bool


class Silence(Answer):
    id: int
    check_name: str  # a check, or "*" for all
    created_at: datetime
    until_at: datetime
    comment: str
    removed_at: datetime | None
    active: bool | None = None  # in GET /v1/silences: not removed and not expired


class SilenceList(Answer):
    """GET /v1/silences: the active silences, or with ?all=1 the last 200."""

    silences: list[Silence]


class SilenceRemoved(Answer):
    removed: int
