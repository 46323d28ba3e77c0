"""
A sync run as it goes: its live progress (status, the event stream), how it ends (its outcome and
the cause recorded when something broke it), and the log lines each written batch leaves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger

from ..errors import StoreError
from ..store import ApplyResult, FetchFailure, FetchSuccess, RunCounts

Result = FetchSuccess | FetchFailure


@dataclass
class RunProgress:
    """The live state of the run in progress, as status and the event stream show it."""

    run_id: int
    trigger: str
    started_at: datetime
    planned: int = 0  # how many the run expects to take, known at its start (progress bars)
    counts: RunCounts = field(default_factory=RunCounts)
    done: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    deferred: int = 0  # still answered 429 after every pause: left due for a later run, not failed
    stop_reason: str = ""
    auth_failed: bool = False
    circuit_open: bool = False
    stop_requested: bool = False
    out_of_time: bool = False

    @property
    def stopping(self) -> bool:
        return self.auth_failed or self.circuit_open or self.stop_requested or self.out_of_time

    def snapshot(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "planned": self.planned,
            "done": self.done,
            **asdict(self.counts),
            "unknown_ids": self.unknown_ids,
            "stop_reason": self.stop_reason,
        }


def run_outcome(progress: RunProgress) -> str:
    """How a finished run is recorded: ok, partial, failed, aborted or interrupted."""
    c = progress.counts
    if progress.auth_failed:
        return "failed"
    if progress.circuit_open:
        return "aborted"
    if progress.stop_requested:
        return "interrupted"
    if c.failed and not (c.updated or c.unchanged):
        return "failed"
    if progress.out_of_time or progress.deferred:
        return "partial"
    return "partial" if c.failed else "ok"


def log_batch(run_id: int, batch: Sequence[Result], applied: ApplyResult) -> None:
    """A written batch's lines: write errors at WARNING, one INFO line of changes and one of failures, each at DEBUG."""
    log = logger.bind(loop="sync", run_id=run_id)
    for shipment_id, error in applied.write_errors:
        log.warning("shipment {} not written: {}", shipment_id, error)
    # One INFO line per batch for people (a force sync of 10,000 changes is some 100 lines, not
    # 10,000); each shipment at DEBUG. A first status (a shipment's first fetch) is not a change.
    numbers = {r.shipment_id: r.info.tracking_number for r in batch if isinstance(r, FetchSuccess)}
    changes = [(sid, old, new) for sid, old, new in applied.changed if old is not None]
    for shipment_id, old, new in changes:
        log.debug("status {} ({}) {} -> {}", shipment_id, numbers.get(shipment_id, "?"), old, new)
    if changes:
        pairs = Counter(f"{old}->{new}" for _, old, new in changes)
        log.bind(status_changes=dict(pairs)).info("status changes: {} ({})", len(changes), tally(pairs))
    failures = [r for r in batch if isinstance(r, FetchFailure)]
    for failure in failures:
        log.debug("fetch failed {} ({}): {}", failure.shipment_id, failure.kind, failure.message)
    if failures:
        kinds = Counter(f.kind for f in failures)
        example = failures[0]
        log.bind(fetch_failures=dict(kinds)).info(
            "fetch failures: {} ({}); e.g. {}: {}",
            len(failures),
            tally(kinds),
            example.shipment_id,
            example.message[:120],
        )


def tally(counts: Counter[str]) -> str:
    """ "IT->DE 8, AC->IT 4": the commonest first."""
    return ", ".join(f"{key} {n}" for key, n in counts.most_common())


def root_cause(exc: BaseException) -> BaseException:
    """The error inside the pipeline's task-group wrapping, a StoreError first."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = next((e for e in exc.exceptions if isinstance(e, StoreError)), exc.exceptions[0])
    return exc


def failure_reason(exc: BaseException) -> str:
    """What broke a run, for its record: a StoreError's own message ("disk full: ..."), else the exception."""
    exc = root_cause(exc)
    if isinstance(exc, StoreError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"[:500]
