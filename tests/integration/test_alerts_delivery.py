"""
Alert rules end to end: health reports in, notices out through Apprise to real receivers on 127.0.0.1.

Each test drives `Alerting` on a real SQLite store with a FakeClock, feeding synthetic reports one
schedule step at a time, and asserts on what the JSON webhook and the SMTP server actually received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from alert_receivers import Smtp, Webhook, closed_port, smtp, webhook
from pg_fixtures import BACKENDS, truncate_all

from shiptrackd.alerts.delivery import ChannelSet
from shiptrackd.alerts.state import Alerting
from shiptrackd.clock import FakeClock
from shiptrackd.config import Config, load
from shiptrackd.errors import InvalidRequestError
from shiptrackd.events import EventBus
from shiptrackd.health.monitor import HealthMonitor
from shiptrackd.health.rules import (
    ApiProbe,
    CheckResult,
    build_report,
    judge_api,
    judge_recent_sync,
    judge_stale,
)
from shiptrackd.store import Store
from shiptrackd.store.rows import NotificationRow
from shiptrackd.units import format_rfc3339
from shiptrackd.wire.names import CHECKS

pytestmark = pytest.mark.anyio

STEP = timedelta(minutes=5)  # the health schedule


@dataclass
class Harness:
    path: Path | str  # the SQLite file, or the PostgreSQL URL
    clock: FakeClock
    store: Store
    alerting: Alerting
    hook: Webhook
    mail: Smtp

    async def feed(self, **levels: str) -> dict[str, Any]:
        """Store one report with these check levels (others ok), evaluate it, deliver what it queued."""
        report = make_report(self.clock, **levels)
        await self.store.health.save_report(report, "schedule")
        outcomes = await self.alerting.evaluate_pending()
        await self.alerting.dispatcher.run_once()
        return outcomes[-1]

    async def step(self, **levels: str) -> dict[str, Any]:
        """Five minutes later, the next report."""
        await self.clock.advance(STEP)
        return await self.feed(**levels)

    async def restart(self) -> None:
        """Close the store and build everything again from the file, as a daemon restart does."""
        await self.store.close()
        self.store = await Store.open(self.path)
        self.alerting = await make_alerting(self.store, self.clock, self.alerting.config)
        await self.store.alerts.release_claims()

    async def notifications(self) -> list[NotificationRow]:
        notifications: list[NotificationRow] = (await self.alerting.recent(100))["notifications"]
        return notifications


def make_report(clock: FakeClock, **levels: str) -> dict[str, Any]:
    now = clock.now()
    checks = []
    for name in CHECKS:
        level = levels.get(name, "ok")
        if name == "stale_shipments":
            count = {"ok": 0, "warning": 37, "critical": 150}[level]
            top = [
                {"id": "ship_0001", "carrier_code": "ups", "tracking_number": "1ZSTUCK0001", "status_code": "IT"},
                {"id": "ship_0002", "carrier_code": "fedex", "tracking_number": "7712", "last_error": "HTTP 503"},
            ]
            checks.append(judge_stale(count, 1204, stale_after_s=36 * 3600, warning=10, critical=100, top=top))
        elif name == "api_connectivity":
            probe = ApiProbe(error_kind="unauthorized", status=401) if level == "critical" else ApiProbe(0.05)
            checks.append(judge_api(probe, now=now, auth_failed_at=None, auth_window_s=3600, latency_warning_s=5))
        elif name == "recent_sync":
            age = {"ok": 60, "warning": 1200, "critical": 7200}[level]
            last = now - timedelta(seconds=age)
            checks.append(
                judge_recent_sync(last, now=now, started_at=now - timedelta(days=1), warning_s=900, critical_s=3600)
            )
        else:
            checks.append(CheckResult(name, level, f"{name} looks {level}"))
    assert [c.level for c in checks] == [levels.get(n, "ok") for n in CHECKS]
    return build_report(checks, at=now, host="testhost", trigger="schedule")


def alert_config(urls: list[str], **alerts: str) -> Config:
    env = {
        "SHIPTRACK_DAEMON__STATE_DIR": "/tmp/unused",
        "SHIPTRACK_ALERTS__URLS": "[" + ", ".join(f'"{u}"' for u in urls) + "]",
        **{f"SHIPTRACK_ALERTS__{k.upper()}": v for k, v in alerts.items()},
    }
    return load(None, env=env)


async def make_alerting(store: Store, clock: FakeClock, config: Config) -> Alerting:
    channels = await ChannelSet.build(config.alerts.urls, throttle=False)
    return Alerting(store=store, clock=clock, bus=EventBus(), config=config, monitor=HostOnly(), channels=channels)


class HostOnly(HealthMonitor):
    """The monitor as these tests need it, its host name only: they hand the rules their reports, never measure."""

    def __init__(self) -> None:  # nothing is measured here, so none of the monitor's parts are built
        pass

    @property
    def host(self) -> str:
        return "testhost"


Receivers = tuple[Webhook, Smtp]


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Webhook, Smtp]]:
    async with webhook() as hook, smtp() as mail:
        yield hook, mail


async def harness(
    tmp_path: Path, receivers: tuple[Webhook, Smtp], *extra_urls: str, target: Path | str | None = None, **alerts: str
) -> Harness:
    hook, mail = receivers
    clock = FakeClock()
    path = target or tmp_path / "shiptrackd.db"
    store = await Store.open(path)
    config = alert_config([hook.url, mail.url, *extra_urls], **alerts)
    return Harness(path, clock, store, await make_alerting(store, clock, config), hook, mail)


@pytest.fixture(params=BACKENDS)
async def h(request: pytest.FixtureRequest, tmp_path: Path, receivers: tuple[Webhook, Smtp]) -> AsyncIterator[Harness]:
    """Alert state and the outbox behave the same on a real SQLite file and a real PostgreSQL database."""
    target: Path | str | None = None
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        truncate_all(url)
        target = url
    made = await harness(tmp_path, receivers, target=target)
    yield made
    await made.store.close()


async def test_a_single_failing_report_is_a_blip(h: Harness) -> None:
    """With for_reports=2 one failing report followed by a passing one sends nothing."""
    await h.feed(stale_shipments="warning")
    await h.step()
    await h.step()
    assert await h.notifications() == [] and h.hook.items == [] and h.mail.items == []


async def test_fires_after_for_reports_with_content_at_webhook_and_smtp(h: Harness) -> None:
    """The second failing report in a row fires one notice; the webhook and the mailbox get host, value, evidence."""
    first = await h.feed(stale_shipments="warning")
    assert first["notification_id"] is None
    second = await h.step(stale_shipments="warning")
    assert [s["check"] for s in second["sent"]] == ["stale_shipments"]
    [posted] = await h.hook.wait_for(1)
    payload = posted["json"]
    assert payload["type"] == "warning" and payload["version"] == "1.0"
    assert payload["title"] == "[WARNING] shiptrackd on testhost: stale_shipments"
    body = payload["message"]
    assert "shiptrackd on testhost" in body
    assert "WARNING stale_shipments: 37 of 1204 active shipments not updated for over 1d12h" in body
    assert "value 37 (warning above 10, critical above 100)" in body
    assert "ship_0001 ups 1ZSTUCK0001" in body and "HTTP 503" in body
    [mail] = await h.mail.wait_for(1)
    assert mail.subject == payload["title"]
    assert (
        mail.rcpt_tos == ["ops@example.com"] and mail.message["From"].addresses[0].addr_spec == "shiptrackd@example.com"
    )
    assert "value 37 (warning above 10, critical above 100)" in mail.text
    deliveries = (await h.notifications())[0].deliveries
    assert sorted(d.channel.split("://")[0] for d in deliveries) == ["console", "json", "mailto"]
    assert all(d.status == "sent" and d.attempts <= 1 for d in deliveries)


async def test_repeats_only_after_repeat_interval_over_simulated_hours(h: Harness) -> None:
    """A check failing for 9 hours is notified at fire time and then once per 4 h repeat_interval, no more."""
    await h.feed(error_rate="warning")
    for _ in range(9 * 12):  # 9 hours of reports every 5 minutes
        await h.step(error_rate="warning")
    kinds = [n.kind for n in reversed(await h.notifications())]
    assert kinds == ["firing", "repeat", "repeat"]
    times = sorted(n.created_at for n in await h.notifications())
    assert times == [datetime(2026, 1, 5, hour, 5, tzinfo=UTC) for hour in (9, 13, 17)]
    await h.hook.wait_for(3)
    assert "(still failing)" in h.hook.items[-1]["json"]["message"]


async def test_escalation_goes_out_at_once_and_routes_by_tag(tmp_path: Path, receivers: tuple[Webhook, Smtp]) -> None:
    """Warning -> critical is sent on the next report; a critical-only channel hears only the critical notice."""
    async with webhook() as pager:
        h = await harness(tmp_path, receivers, "critical=" + pager.url)
        try:
            await h.feed(recent_sync="warning")
            await h.step(recent_sync="warning")
            escalated = await h.step(recent_sync="critical")
            assert [(s["kind"], s["severity"]) for s in escalated["sent"]] == [("escalated", "critical")]
            assert (await h.step(recent_sync="warning"))["sent"] == []  # de-escalation is not news
            assert (await h.step(recent_sync="critical"))["sent"] == []  # nor is going back within the episode
            await h.hook.wait_for(2)
            assert [p["json"]["type"] for p in h.hook.items] == ["warning", "failure"]
            [paged] = await pager.wait_for(1)
            assert paged["json"]["title"] == "[CRITICAL] shiptrackd on testhost: recent_sync"
            assert "CRITICAL recent_sync (escalated): last successful sync 2h ago" in paged["json"]["message"]
        finally:
            await h.store.close()


async def test_checks_failing_together_go_out_as_one_message(h: Harness) -> None:
    """Two checks that start failing in the same reports are one notice naming both, worst first."""
    await h.feed(stale_shipments="warning", loops="critical")
    out = await h.step(stale_shipments="warning", loops="critical")
    assert sorted(s["check"] for s in out["sent"]) == ["loops", "stale_shipments"]
    [posted] = await h.hook.wait_for(1)
    message = posted["json"]["message"]
    assert posted["json"]["title"] == "[CRITICAL] shiptrackd on testhost: stale_shipments, loops"
    assert message.index("CRITICAL loops") < message.index("WARNING stale_shipments")
    assert len(await h.notifications()) == 1


async def test_symptoms_are_held_back_while_the_api_is_critical(h: Harness) -> None:
    """While api_connectivity is critical only it is notified; the symptoms fire once the API is back."""
    failing = {"stale_shipments": "warning", "recent_sync": "critical", "error_rate": "warning"}
    await h.feed(api_connectivity="critical", **failing)
    out = await h.step(api_connectivity="critical", **failing)
    assert [s["check"] for s in out["sent"]] == ["api_connectivity"]
    assert {d["check"] for d in out["held"]} == set(failing)
    assert all(d["held"] == "api_connectivity is critical" for d in out["held"])
    [posted] = await h.hook.wait_for(1)
    assert "the API rejected the key (HTTP 401)" in posted["json"]["message"]
    back = await h.step(**failing)  # API fine now, symptoms still failing: they have waited long enough
    assert sorted(s["check"] for s in back["sent"]) == ["error_rate", "recent_sync", "stale_shipments"]


async def test_silence_until_is_read_as_rfc3339(h: Harness) -> None:
    """A silence's `until` is read by units.parse_rfc3339: Z or an offset is accepted, a time without one is refused."""
    end = h.clock.now() + timedelta(hours=2)
    silence = await h.alerting.add_silence("loops", duration=None, until=format_rfc3339(end), comment="")
    assert silence.check_name == "loops" and silence.until_at == end
    with pytest.raises(InvalidRequestError, match="until: expected an RFC 3339 time with an offset"):
        await h.alerting.add_silence("loops", duration=None, until="2030-01-05T18:00:00", comment="")


async def test_silence_mutes_expires_on_its_own_and_is_not_lifted_by_success(h: Harness) -> None:
    """A silenced check sends nothing, a passing report leaves the silence in place, and expiry unmutes it."""
    silence = await h.alerting.add_silence("stale_shipments", duration="2h", until=None, comment="carrier outage")
    await h.feed(stale_shipments="warning")
    out = await h.step(stale_shipments="warning")
    assert out["sent"] == [] and out["held"][0]["held"] == "silenced"
    await h.step()  # passes once...
    await h.step(stale_shipments="warning")
    assert [s["id"] for s in await h.alerting.silences()] == [silence.id]  # ...the silence stays
    for _ in range(20):
        await h.step(stale_shipments="warning")
    assert await h.notifications() == []
    await h.clock.advance(hours=2)
    out = await h.feed(stale_shipments="warning")
    assert [s["kind"] for s in out["sent"]] == ["firing"]
    assert await h.alerting.silences() == []
    assert (await h.alerting.silences(include_expired=True))[0]["comment"] == "carrier outage"


async def test_resolved_notice_after_resolve_after_passing_reports(h: Harness) -> None:
    """A firing check that passes twice in a row gets one RESOLVED notice (Apprise type success)."""
    await h.feed(error_rate="critical")
    await h.step(error_rate="critical")
    assert (await h.step())["sent"] == []
    out = await h.step()
    assert [(s["kind"], s["severity"]) for s in out["sent"]] == [("resolved", "critical")]
    await h.hook.wait_for(2)
    resolved = h.hook.items[-1]["json"]
    assert resolved["type"] == "success" and resolved["title"] == "[RESOLVED] shiptrackd on testhost: error_rate"
    assert (
        "RESOLVED error_rate: error_rate looks ok (was critical, failing since 2026-01-05T09:05:00Z"
        in (resolved["message"])
    )
    await h.mail.wait_for(2)
    assert h.mail.items[-1].subject.startswith("[RESOLVED]")
    assert (await h.step())["sent"] == []


async def test_send_resolved_off_closes_quietly(tmp_path: Path, receivers: tuple[Webhook, Smtp]) -> None:
    """With send_resolved = false a recovery sends nothing, and the next failure fires afresh."""
    h = await harness(tmp_path, receivers, send_resolved="false")
    try:
        await h.feed(loops="warning")
        await h.step(loops="warning")
        await h.step()
        out = await h.step()
        assert out["sent"] == [] and out["held"][0]["held"] == "send_resolved is off"
        await h.step(loops="warning")
        assert [s["kind"] for s in (await h.step(loops="warning"))["sent"]] == ["firing"]
    finally:
        await h.store.close()


async def test_restart_mid_alert_neither_resends_nor_loses_the_resolved_notice(h: Harness) -> None:
    """After a restart a firing alert is not sent again, and its recovery still produces the resolved notice."""
    await h.feed(stale_shipments="critical")
    await h.step(stale_shipments="critical")
    await h.hook.wait_for(1)
    await h.restart()
    await h.step(stale_shipments="critical")
    await h.step()
    await h.restart()  # between the two passing reports
    out = await h.step()
    assert [s["kind"] for s in out["sent"]] == ["resolved"]
    await h.hook.wait_for(2)
    assert [p["json"]["type"] for p in h.hook.items] == ["failure", "success"]


async def test_a_delivery_cut_off_by_a_crash_is_sent_after_restart(h: Harness) -> None:
    """A row claimed but never finished (kill -9 mid-send) is delivered once after the restart."""
    await h.feed(loops="critical")
    await h.clock.advance(STEP)
    report = make_report(h.clock, loops="critical")
    await h.store.health.save_report(report, "schedule")
    await h.alerting.evaluate_pending()  # queued, not delivered...
    for row in await h.store.alerts.pending():
        assert await h.store.alerts.claim(row.id, h.clock.now())  # ...claimed by a sender that then died
    await h.restart()
    await h.alerting.dispatcher.run_once()
    await h.hook.wait_for(1)
    await h.mail.wait_for(1)
    assert len(h.hook.items) == 1 and len(h.mail.items) == 1
    assert all(d.status == "sent" for d in (await h.notifications())[0].deliveries)


async def test_hourly_cap_over_simulated_hours(tmp_path: Path, receivers: tuple[Webhook, Smtp]) -> None:
    """A flapping check produces at most max_per_hour notices in any hour; the held ones go out later."""
    h = await harness(tmp_path, receivers, for_reports="1", resolve_after="1", max_per_hour="3")
    try:
        for i in range(3 * 12):  # three hours, flapping every report
            await h.step(error_rate="warning" if i % 2 == 0 else "ok")
        times = sorted(n.created_at for n in await h.notifications())
        assert len(times) >= 6
        for i, start in enumerate(times):
            in_hour = [t for t in times[i:] if t - start < timedelta(hours=1)]
            assert len(in_hour) <= 3, (start, in_hour)
        assert h.alerting.capped > 0
    finally:
        await h.store.close()


async def test_a_dead_channel_does_not_hold_up_a_live_one(tmp_path: Path, receivers: tuple[Webhook, Smtp]) -> None:
    """A channel on a closed port fails after its retries, recorded per attempt; the live ones still get it."""
    dead = f"json://127.0.0.1:{closed_port()}/hook"
    h = await harness(tmp_path, receivers, dead)
    try:
        await h.feed(store="critical")
        await h.step(store="critical")
        await h.hook.wait_for(1)
        await h.mail.wait_for(1)
        deliveries = {d.channel: d for d in (await h.notifications())[0].deliveries}
        failed = deliveries[dead]
        assert failed.status == "failed" and failed.attempts == 3
        assert "Connection error" in failed.error or "connect" in failed.error.lower()
        assert deliveries[h.hook.url].status == "sent" and deliveries["console"].status == "sent"
    finally:
        await h.store.close()


async def test_a_flaky_channel_is_retried_until_it_answers(h: Harness) -> None:
    """Two 500s then a 200: stamina retries the webhook, the notice arrives once, with 3 attempts recorded."""
    h.hook.fail_next = 2
    await h.feed(loops="warning")
    await h.step(loops="warning")
    await h.hook.wait_for(1)
    assert len(h.hook.requests) == 3 and len(h.hook.items) == 1
    hook_row = next(d for d in (await h.notifications())[0].deliveries if d.channel == h.hook.url)
    assert hook_row.status == "sent" and hook_row.attempts == 3


async def test_test_notice_reaches_every_channel_whatever_its_tags(
    tmp_path: Path, receivers: tuple[Webhook, Smtp]
) -> None:
    """`alert --test` goes to the console, an untagged webhook, the mailbox and a critical-only channel."""
    async with webhook() as pager:
        h = await harness(tmp_path, receivers, "critical=" + pager.url)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(h.alerting.dispatcher.run)  # as in the daemon: the sender is its own task
                result = await h.alerting.send_test(wait_s=10)
                tg.cancel_scope.cancel()
            assert result["delivered"] and len(result["deliveries"]) == 4
            await h.hook.wait_for(1)
            await pager.wait_for(1)
            [mail] = await h.mail.wait_for(1)
            assert mail.subject == "[TEST] shiptrackd on testhost: test notification"
            assert h.hook.items[0]["json"]["type"] == "info"
            assert await h.store.alerts.notifications_since(h.clock.now() - timedelta(hours=1)) == 0  # not capped
        finally:
            await h.store.close()


async def test_channel_urls_are_masked_wherever_they_are_shown(tmp_path: Path, receivers: tuple[Webhook, Smtp]) -> None:
    """Passwords and tokens in Apprise URLs never appear in the log, the API, or delivery errors."""
    secret_url = f"json://alice:hunter2secret@127.0.0.1:{closed_port()}/hook?+X-Token=tok3nvalue"
    h = await harness(tmp_path, receivers, "warning=" + secret_url)
    try:
        await h.feed(loops="warning")
        await h.step(loops="warning")
        recent = await h.alerting.recent(10)
        shown = repr(recent)
        assert "hunter2secret" not in shown and "tok3nvalue" not in shown
        assert any(c["channel"].startswith("warning=json://alice:****@127.0.0.1") for c in recent["channels"])
    finally:
        await h.store.close()
