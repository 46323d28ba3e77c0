"""
One job's requests and what each answer means: registration first where the provider needs it,
then one fetch (or one batch), and per shipment a result with its next check, or nothing when the
run must stop (a rejected key) or the shipment is deferred (the account's rate limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec
from loguru import logger

from ..errors import (
    NotRegisteredError,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachableError,
    QuotaExhaustedError,
    RateLimitedError,
)
from ..models import TrackingInfo
from ..providers.base import Parcel, Registration
from ..store import FetchFailure, FetchSuccess
from ..store.rows import Shipment
from ..wire.names import EVENT_PROVIDER_AUTH_FAILED
from . import cadence
from .lanes import Job
from .progress import Result, RunProgress
from .throttle import ProviderThrottle

if TYPE_CHECKING:
    from .engine import SyncEngine


def parcel(shipment: Shipment) -> Parcel:
    return Parcel(shipment.carrier_code, shipment.tracking_number, shipment.provider_ref)


class Fetcher:
    """The engine's fetch step; reads the engine's live config, clock, store and push state."""

    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine

    async def fetch_job(self, progress: RunProgress, job: Job) -> list[Result]:
        """One job's shipments fetched (registered first where the provider needs it): a result each."""
        lane, shipments = job.lane, job.shipments
        results: list[Result] = []
        if lane.provider.needs_registration:
            shipments = await self.register(progress, lane, shipments, results)
        if not shipments or progress.stopping:
            return results
        if lane.batch_size == 1 and len(shipments) == 1 and not lane.provider.needs_registration:
            shipment = shipments[0]
            try:
                info = await lane.fetch(shipment.carrier_code, shipment.tracking_number)
            except Exception as exc:
                failed = await self.failed(progress, lane, shipment, exc)
                return [*results, failed] if failed else results
            return [*results, self.succeeded(lane, shipment, info)]
        try:
            answers: Mapping[str, TrackingInfo | ProviderError] = await lane.fetch_many([parcel(s) for s in shipments])
        except Exception as exc:  # the whole request failed: each shipment takes the same error
            for shipment in shipments:
                if (failed := await self.failed(progress, lane, shipment, exc)) is not None:
                    results.append(failed)
            return results
        for shipment in shipments:
            got = answers[shipment.tracking_number]
            if isinstance(got, ProviderError):
                if (failed := await self.failed(progress, lane, shipment, got)) is not None:
                    results.append(failed)
            else:
                results.append(self.succeeded(lane, shipment, got))
        return results

    async def register(
        self, progress: RunProgress, lane: ProviderThrottle, shipments: list[Shipment], results: list[Result]
    ) -> list[Shipment]:
        """Register the job's new shipments with one request; those registered (and the old ones) go on."""
        mine = lane.provider.name
        new = [s for s in shipments if not (s.provider_ref and s.provider == mine)]
        if not new:
            return shipments
        new_ids = {s.id for s in new}
        answers: Mapping[str, Registration | ProviderError]
        try:
            answers = await lane.register([parcel(s) for s in new])
        except Exception as exc:
            for shipment in new:
                if (failed := await self.failed(progress, lane, shipment, exc)) is not None:
                    results.append(failed)
            return [s for s in shipments if s.id not in new_ids]
        ready = [s for s in shipments if s.id not in new_ids]
        rows: list[tuple[str, str, str]] = []
        detected: list[tuple[str, str]] = []
        for shipment in new:
            got = answers[shipment.tracking_number]
            if isinstance(got, ProviderError):
                if (failed := await self.failed(progress, lane, shipment, got)) is not None:
                    results.append(failed)
                continue
            rows.append((shipment.id, lane.provider.name, got.ref))
            carrier = shipment.carrier_code
            if not carrier and got.carrier_code:  # added without one: the provider's guess is its carrier
                detected.append((shipment.id, got.carrier_code))
                carrier = got.carrier_code
            ready.append(
                msgspec.structs.replace(
                    shipment, carrier_code=carrier, provider=lane.provider.name, provider_ref=got.ref
                )
            )
        if rows:
            lane.quota_exhausted = ""
            await self.engine.store.shipments.set_provider(rows, self.engine.clock.now())
        if detected:
            for sid, twin in await self.engine.store.carriers.set_detected(detected, self.engine.clock.now()):
                logger.warning("{}: its detected carrier is {}'s already; its carrier stays unset", sid, twin)
        return ready

    def succeeded(self, lane: ProviderThrottle, shipment: Shipment, info: TrackingInfo) -> FetchSuccess:
        """
        A fetched shipment's result and its next check: the answer's status's, and the stored
        status's for the store to take if the answer turns out stale (store/apply.py `is_stale`),
        computed alike, so a kept status keeps its own cadence (an eventless UN after IT must not
        back off, or expire, as "status unknown").
        """
        self.engine.auth_failed_at = lane.auth_failed_at = None
        nxt, missed = self.schedule(shipment, info.status_code, info.status_detail_code)
        kept = nxt
        if shipment.status_code is not None:
            kept, _ = self.schedule(shipment, shipment.status_code, shipment.status_detail_code)
        return FetchSuccess(
            shipment.id,
            info,
            nxt.at,
            nxt.reason,
            push_missed=missed,
            provider=lane.provider.name,
            kept=(shipment.status_code, kept.at, kept.reason),
        )

    def schedule(self, shipment: Shipment, status: str, detail: str) -> tuple[cadence.Next, bool | None]:
        """When *shipment* is next due if it now has *status*, and its push_missed flag (None: unchanged)."""
        cad = self.engine.config.sync.cadence
        now = self.engine.clock.now()
        state = (shipment.status_code, shipment.schedule_reason, shipment.created_at, now, detail)
        if self.engine.push is not None:  # webhooks on: the shipment's push regime decides (sync/cadence.py)
            return cadence.after_poll(
                cad,
                status,
                *state,
                subscribed=shipment.subscribed_at is not None,
                channel_silent=self.engine.push.silence(now) != "ok",
            )
        return cadence.after_success(cad, status, *state), None

    async def failed(
        self, progress: RunProgress, lane: ProviderThrottle, shipment: Shipment, exc: Exception
    ) -> Result | None:
        """A shipment's failure and its next check; None when the run must stop (bad key) or defers it."""
        if isinstance(exc, ProviderAuthError):
            if not progress.auth_failed:
                progress.auth_failed = True
                progress.stop_reason = (
                    f"{lane.provider.name}: the API rejected the key ({exc.status}): check its api_key"
                    if self.engine.others
                    else f"the API rejected the key ({exc.status}): check [provider] api_key"
                )
                self.engine.auth_failed_at = lane.auth_failed_at = self.engine.clock.now()
                await self.engine.store.runs.add_error(
                    progress.run_id, exc.kind, str(exc), self.engine.clock.now(), exc.status
                )
                self.engine.bus.publish(EVENT_PROVIDER_AUTH_FAILED, run_id=progress.run_id, message=str(exc))
            return None
        if isinstance(exc, RateLimitedError):
            # The account's limit, not this shipment's fault: it stays due, untouched, for the next run.
            progress.deferred += 1
            return None
        error = exc if isinstance(exc, ProviderError) else None  # a bug or an odd answer never stops the others
        kind = error.kind if error else "internal"
        if isinstance(exc, QuotaExhaustedError):
            if not lane.quota_exhausted:
                logger.error("{}: quota exhausted, registrations stop: {}", lane.provider.name, exc)
            lane.quota_exhausted = str(exc)
        if isinstance(exc, ProviderUnreachableError) and (
            lane.unreachable_in_a_row >= lane.config.circuit_breaker and not progress.circuit_open
        ):
            progress.circuit_open = True
            progress.stop_reason = (
                f"{lane.provider.name + ': ' if self.engine.others else ''}API unreachable"
                f" {lane.unreachable_in_a_row} calls in a row: circuit open, stopped early, cached statuses kept"
            )
        if isinstance(exc, NotRegisteredError) and shipment.provider_ref:  # the provider forgot it: register again
            await self.engine.store.shipments.set_provider(
                [(shipment.id, lane.provider.name, "")], self.engine.clock.now()
            )
        if error is None:
            logger.opt(exception=exc).error("unexpected error syncing {}", shipment.id)
        failures = shipment.consecutive_failures + 1
        nxt = cadence.after_failure(
            self.engine.config.sync.cadence, kind, failures, shipment.created_at, self.engine.clock.now()
        )
        return FetchFailure(
            shipment.id,
            kind,
            str(exc) or type(exc).__name__,
            error.status if error else None,
            nxt.at,
            nxt.reason,
        )
