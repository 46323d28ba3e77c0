"""
Group commit (push/batch.py) on a real SQLite store: pushes that arrive while a write is in flight
share the next transaction, each caller gets its own outcome only after its batch committed, one
push's failure is its own, and a caller cancelled while queued neither is written nor stalls the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from shiptrackd.models import NewShipment, TrackingEvent, TrackingInfo
from shiptrackd.push.batch import GroupCommit
from shiptrackd.store import FetchSuccess, Store
from shiptrackd.store.push import PushBatchItem, PushWrite
from shiptrackd.store.rows import Shipment

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
Item = PushBatchItem[TrackingInfo]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "st.db")
    try:
        yield store
    finally:
        await store.close()


def _push(number: str, status: str = "IT") -> Item:
    scanned = NOW + timedelta(hours=1)
    events = (TrackingEvent(NOW, "label", "AC", event_code="E0"), TrackingEvent(scanned, "scan", status))
    info = TrackingInfo(number, status, events=events)

    def decide(shipment: Shipment, answer: TrackingInfo) -> FetchSuccess:
        if answer.tracking_number.endswith("BUG"):
            raise ValueError("a bug in this push's path")
        return FetchSuccess(shipment.id, answer, NOW + timedelta(days=1), "push")

    return PushBatchItem([("ups", number, info)], NOW, decide)


async def _add(store: Store, numbers: Sequence[str]) -> dict[str, str]:
    added = (await store.shipments.add_many([NewShipment("ups", n) for n in numbers], NOW)).added
    return {a.tracking_number: a.id for a in added}


async def _push_count(store: Store, shipment_id: str) -> int:
    shipment = await store.shipments.get(shipment_id)
    assert shipment is not None
    return shipment.push_count


async def test_concurrent_pushes_share_transactions_and_each_gets_its_own_answer(store: Store) -> None:
    numbers = [f"1ZGC{i:03d}" for i in range(20)] + ["1ZGCBUG"]
    ids = await _add(store, numbers)
    group: GroupCommit[Item, PushWrite] = GroupCommit(store.push.write_batch)
    answers: dict[str, PushWrite | Exception] = {}

    async def send(number: str) -> None:
        try:
            answers[number] = await group.submit(_push(number))
        except ValueError as exc:
            answers[number] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for number in numbers:
                tg.start_soon(send, number)
    assert group.items == len(numbers) and group.batches < len(numbers)  # pushes did share transactions
    assert isinstance(answers["1ZGCBUG"], ValueError)
    assert await _push_count(store, ids["1ZGCBUG"]) == 0
    for number in numbers[:-1]:
        answer = answers[number]
        assert isinstance(answer, PushWrite) and answer.shipment_ids == [ids[number]], number
        assert await _push_count(store, ids[number]) == 1, number


async def test_a_whole_batch_failure_reaches_every_caller_in_it(store: Store) -> None:
    """A write that fails as a whole (nothing committed) answers each of its callers with that error."""
    ids = await _add(store, ["1ZW1", "1ZW2", "1ZW3"])
    calls: list[int] = []

    async def failing_second(items: Sequence[Item]) -> list[PushWrite | Exception]:
        calls.append(len(items))
        if len(calls) == 2:
            raise OSError("the store went away")
        return await store.push.write_batch(items)

    group: GroupCommit[Item, PushWrite] = GroupCommit(failing_second)
    answers: dict[str, object] = {}

    async def send(number: str) -> None:
        try:
            answers[number] = await group.submit(_push(number))
        except OSError as exc:
            answers[number] = exc

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for number in ids:
                tg.start_soon(send, number)
    assert calls == [1, 2]  # the first alone, the two that queued behind it together
    assert isinstance(answers["1ZW1"], PushWrite)
    assert isinstance(answers["1ZW2"], OSError) and isinstance(answers["1ZW3"], OSError)
    assert [await _push_count(store, ids[n]) for n in ("1ZW1", "1ZW2", "1ZW3")] == [1, 0, 0]


async def test_a_caller_cancelled_while_queued_is_not_written_and_the_queue_goes_on(store: Store) -> None:
    """
    Cancelled while its write was still queued (here: right as it was about to lead the next batch),
    a push is not written, and the pushes behind it are, by the next caller in line.
    """
    ids = await _add(store, ["1ZC1", "1ZC2", "1ZC3", "1ZC4"])
    scopes: dict[str, anyio.CancelScope] = {}

    async def cancel_the_next_leader(items: Sequence[Item]) -> list[PushWrite | Exception]:
        first = len(items) == 1 and items[0].pushed[0][1] == "1ZC1"
        if first:
            await anyio.wait_all_tasks_blocked()  # 1ZC2..4 are queued behind it
        outcomes = await store.push.write_batch(items)
        if first:
            scopes["1ZC2"].cancel()  # lands as 1ZC2 is woken to lead the next batch
        return outcomes

    group: GroupCommit[Item, PushWrite] = GroupCommit(cancel_the_next_leader)
    written: list[str] = []

    async def send(number: str) -> None:
        with anyio.CancelScope() as scopes[number]:
            await group.submit(_push(number))
            written.append(number)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for number in ids:
                tg.start_soon(send, number)
    assert sorted(written) == ["1ZC1", "1ZC3", "1ZC4"]
    assert [await _push_count(store, ids[n]) for n in ("1ZC1", "1ZC2", "1ZC3", "1ZC4")] == [1, 0, 1, 1]
    assert group.batches == 2 and group.items == 3
