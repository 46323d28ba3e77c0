"""
The outbound dispatcher's Prometheus metrics: attempts by outcome, and per endpoint the outbox's lag.

Registered into the daemon's Exporter registry; `refresh()` (awaited by the exporter before each
scrape, under its cache) reads the outbox figures, `collect()` only formats what was read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..store.rows import EndpointFigures
from .dispatcher import Dispatcher

OUTCOMES = ("delivered", "failed", "throttled", "gone")


class OutboundMetrics:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._figures: dict[str, EndpointFigures] = {}
        self._now = dispatcher.clock.now()

    async def refresh(self) -> None:
        d = self.dispatcher
        self._now = d.clock.now()
        window = d.config.health.deliveries_dead_window_s
        self._figures = await d.store.outbox.figures(self._now - timedelta(seconds=window))

    def collect(self) -> Iterator[Metric]:
        d = self.dispatcher
        attempts = CounterMetricFamily(
            "shiptrackd_outbound_attempts", "Webhook delivery attempts since start, by outcome", labels=["outcome"]
        )
        for outcome in OUTCOMES:
            attempts.add_metric([outcome], d.attempts.get(outcome, 0))
        yield attempts
        yield GaugeMetricFamily("shiptrackd_outbound_in_flight", "Webhook deliveries in flight", value=d.in_flight)
        names = [ep.name for ep in d.config.outbound]
        lag = GaugeMetricFamily(
            "shiptrackd_outbound_lag_seconds",
            "Age of the oldest undelivered webhook, per endpoint (0: none waiting)",
            labels=["endpoint"],
        )
        undelivered = GaugeMetricFamily(
            "shiptrackd_outbound_undelivered", "Webhooks waiting or in flight, per endpoint", labels=["endpoint"]
        )
        dead = GaugeMetricFamily(
            "shiptrackd_outbound_dead", "Dead webhooks (dead letters), per endpoint", labels=["endpoint"]
        )
        disabled = GaugeMetricFamily(
            "shiptrackd_outbound_endpoint_disabled", "1 when the dispatcher disabled the endpoint", labels=["endpoint"]
        )
        off = d.disabled()
        for name in names:
            fig = self._figures.get(name) or EndpointFigures()
            oldest = fig.oldest_undelivered_at
            lag.add_metric([name], max(0.0, (self._now - oldest).total_seconds()) if oldest else 0.0)
            undelivered.add_metric([name], fig.undelivered)
            dead.add_metric([name], fig.dead)
            disabled.add_metric([name], int(name in off))
        yield from (lag, undelivered, dead, disabled)
