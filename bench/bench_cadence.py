"""
Adaptive cadence vs a fixed poll over a simulated week of sandbox lifecycles (DESIGN.md
"Performance targets", issue 3): API calls per delivered parcel, and the delay in noticing a
status change, for both.

A pure simulation in simulated time, on the same functions the daemon and the sandbox use:
shiptrackd.sandbox.lifecycle says what each tracking number's status is at any moment (its
scan timeline from first sight, checked against lifecycle.tracking_body), and
shiptrackd.cadence.after_success decides when the daemon checks a shipment next.

- ~500 shipments (seeded), created uniformly over the first 48 h of the week, each first seen
  (its lifecycle clock started) when created.
- fixed poll: a cron every N minutes checks every shipment not yet seen delivered (the seed
  script's approach; lost and never-scanned parcels are polled all week).
- adaptive: the daemon as configured by default: the sync loop runs every 5 min and checks the
  shipments due (new ones at once, then as cadence.after_success says), and the daily force sync
  at 02:00 checks every active one; delivered gets one confirming check a day later, then none.
- "delay in noticing a status change": for every status_code change in the truth, the time
  from the change to the first check at or after it. Changes no check saw by the end of the week
  are counted apart.

    uv run python bench/bench_cadence.py [--quick]
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from _common import header, percentile, table, verdict

from shiptrackd.config import CadenceConfig
from shiptrackd.sandbox import lifecycle
from shiptrackd.sync import cadence

WEEK = timedelta(days=7)
PUSH_LOSS = (0.0, 0.01, 0.05)
PUSH_SAFETY_H = (24, 48, 96)
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday, midnight UTC
SYNC_TICK = timedelta(minutes=5)  # [sync] schedule default
FORCE_HOUR = 2  # [sync] force_schedule default "0 2 * * *"
CARRIERS = ("ups", "fedex", "usps", "dhl_express", "ontrac")


@dataclass
class Parcel:
    carrier: str
    number: str
    created: datetime
    changes: list[tuple[datetime, str]]  # (when, new status_code), the truth, in order
    scans: list[tuple[datetime, str]]  # (when, status_detail_code) of every scan, in order
    status_times: list[datetime] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status_times = [self.created] + [at for at, _ in self.changes]
        self.statuses = ["NY"] + [s for _, s in self.changes]
        self.scan_times = [at for at, _ in self.scans]

    def status_at(self, at: datetime) -> str:
        return self.statuses[bisect.bisect_right(self.status_times, at) - 1]

    def detail_at(self, at: datetime) -> str:
        i = bisect.bisect_right(self.scan_times, at) - 1
        return self.scans[i][1] if i >= 0 else "NOT_YET_RECEIVED_BY_CARRIER"

    @property
    def delivered_at(self) -> datetime | None:
        return next((at for at, s in self.changes if s == "DE"), None)


def make_parcels(n: int, seed: int) -> list[Parcel]:
    rng = random.Random(seed)
    parcels = []
    for i in range(n):
        carrier = CARRIERS[i % len(CARRIERS)]
        number = f"9400{i:012d}"
        created = START + timedelta(seconds=rng.uniform(0, 48 * 3600))
        changes: list[tuple[datetime, str]] = []
        scans: list[tuple[datetime, str]] = []
        status = "NY"
        for offset, stage in lifecycle.timeline(carrier, number):
            at = created + max(offset, timedelta(0))
            scans.append((at, stage.detail))
            if stage.status != status:
                changes.append((at, stage.status))
                status = stage.status
        parcels.append(Parcel(carrier, number, created, changes, scans))
    return parcels


def check_against_sandbox(parcels: list[Parcel], samples: int = 2000) -> None:
    """The simulation's truth must be what the sandbox would answer at that moment."""
    rng = random.Random(1)
    for _ in range(samples):
        p = rng.choice(parcels)
        at = p.created + timedelta(seconds=rng.uniform(0, WEEK.total_seconds()))
        body = lifecycle.tracking_body(p.carrier, p.number, first_seen_at=p.created, now=at)
        assert body["status_code"] == p.status_at(at), (p.number, at, body["status_code"], p.status_at(at))
        assert body["status_detail_code"] == p.detail_at(at), (p.number, at, body["status_detail_code"])


@dataclass
class Outcome:
    name: str
    calls: int = 0
    delays_s: list[float] = field(default_factory=list)
    missed: int = 0
    seen_delivered: int = 0


def score(name: str, parcels: list[Parcel], checks: dict[str, list[datetime]]) -> Outcome:
    out = Outcome(name)
    end = START + WEEK
    for p in parcels:
        times = checks[p.number]
        out.calls += len(times)
        for at, _status in p.changes:
            if at > end:
                continue
            i = bisect.bisect_left(times, at)
            if i == len(times):
                out.missed += 1
            else:
                out.delays_s.append((times[i] - at).total_seconds())
        if any(p.status_at(t) == "DE" for t in times):
            out.seen_delivered += 1
    return out


def fixed_poll(parcels: list[Parcel], every: timedelta) -> dict[str, list[datetime]]:
    """A cron every `every` checks each shipment created before the tick until it is seen delivered."""
    checks: dict[str, list[datetime]] = {}
    ticks = [START + every * k for k in range(int(WEEK / every) + 1)]
    for p in parcels:
        times = []
        for tick in ticks[bisect.bisect_left(ticks, p.created) :]:
            times.append(tick)
            if p.status_at(tick) == "DE":
                break
        checks[p.number] = times
    return checks


def _ticks(every: timedelta) -> Iterator[datetime]:
    at = START
    while at <= START + WEEK:
        yield at
        at += every


Decide = Callable[[CadenceConfig, Parcel, datetime, dict[str, object]], cadence.Next]


def daemon_decide(cad: CadenceConfig, p: Parcel, now: datetime, st: dict[str, object]) -> cadence.Next:
    """What the daemon does: shiptrackd.cadence.after_success on the status code."""
    return cadence.after_success(
        cad,
        p.status_at(now),
        st["status"],
        st["reason"],
        p.created,
        now,
        p.detail_at(now),  # type: ignore[arg-type]
    )


def adaptive(
    parcels: list[Parcel], cad: CadenceConfig, force: bool = True, decide: Decide = daemon_decide
) -> dict[str, list[datetime]]:
    """The daemon's schedule: due checks at every 5-minute sync tick, plus the 02:00 force sync."""
    checks: dict[str, list[datetime]] = {p.number: [] for p in parcels}
    state = {p.number: {"next": p.created, "status": None, "reason": "new", "active": True} for p in parcels}
    by_number = {p.number: p for p in parcels}
    for tick in _ticks(SYNC_TICK):
        is_force = force and tick.hour == FORCE_HOUR and tick.minute == 0
        for number, st in state.items():
            p = by_number[number]
            if not st["active"] or p.created > tick:
                continue
            if not (is_force or st["next"] <= tick):
                continue
            checks[number].append(tick)
            nxt = decide(cad, p, tick, st)
            st.update(status=p.status_at(tick), reason=nxt.reason, next=nxt.at, active=nxt.at is not None)
    return checks


PUSH_DELAY = timedelta(seconds=2)  # a push reaches the daemon seconds after the scan (the sandbox: ~ms)
PUSH_LOOP = timedelta(minutes=1)  # the push loop's period: a resubscription goes out within a minute


def push_first(
    parcels: list[Parcel],
    cad: CadenceConfig,
    *,
    loss: float,
    seed: int,
    force: bool = False,
    resubscribe_after_ex: bool = True,
) -> tuple[dict[str, list[datetime]], dict[str, list[datetime]]]:
    """
    Push first, polling as the safety net: (API calls per parcel, times the daemon learned the status).

    Each parcel is subscribed when added (one call: tracking/start) and polled once then (its first
    answer); the provider pushes the whole history at every scan until DE or EX (auto-stop), each
    push lost with probability `loss`; the daemon schedules with cadence.after_push after a push and
    cadence.after_poll (subscribed, channel healthy) after a poll, on the 5-minute sync tick. After
    an EX the daemon subscribes again (one call) when `resubscribe_after_ex`; the 02:00 force sync
    polls every active shipment when `force`.
    """
    rng = random.Random(seed)
    end = START + WEEK
    calls: dict[str, list[datetime]] = {}
    learned: dict[str, list[datetime]] = {}
    for p in parcels:
        call_times: list[datetime] = [p.created]  # tracking/start
        seen: list[datetime] = []
        status: str | None = None
        reason = "new"
        next_poll: datetime | None = p.created
        pushing = True  # the provider side of the subscription
        scans = iter(p.scans)
        scan = next(scans, None)
        now = p.created
        while True:
            poll_at = _next_tick(next_poll) if next_poll is not None else None
            if force and poll_at is not None and not reason.startswith(cadence.PUSH_REASON):
                poll_at = min(poll_at, _next_force(now))  # the force sync skips shipments whose pushes arrive
            scan_at = scan[0] if scan is not None else None
            if scan_at is not None and (poll_at is None or scan_at < poll_at):
                assert scan is not None
                scan = next(scans, None)
                now = scan_at
                if scan_at > end or not pushing:
                    if scan_at > end:
                        break
                    continue
                truth = p.status_at(scan_at)
                if truth in ("DE", "EX"):
                    pushing = False
                if rng.random() < loss:
                    continue  # lost: the history it carried comes with the next push, or a poll
                at = scan_at + PUSH_DELAY
                seen.append(at)
                nxt = cadence.after_push(cad, truth, status, reason, p.created, at, p.detail_at(scan_at))
                status, reason, next_poll = truth, nxt.reason, nxt.at
                if truth == "EX" and resubscribe_after_ex:
                    call_times.append(at + PUSH_LOOP)
                    pushing = True
                continue
            if poll_at is None or poll_at > end:
                break
            call_times.append(poll_at)
            seen.append(poll_at)
            now = poll_at
            truth = p.status_at(poll_at)
            nxt, _ = cadence.after_poll(
                cad, truth, status, reason, p.created, poll_at, p.detail_at(poll_at), subscribed=True,
                channel_silent=False,
            )  # fmt: skip
            if truth == "EX" and status != "EX" and resubscribe_after_ex and not pushing:
                call_times.append(poll_at + PUSH_LOOP)
                pushing = True
            status, reason, next_poll = truth, nxt.reason, nxt.at
        calls[p.number] = sorted(call_times)
        learned[p.number] = sorted(seen)
    return calls, learned


def _next_tick(at: datetime) -> datetime:
    """The first 5-minute sync tick at or after *at*."""
    k = -(-(at - START) // SYNC_TICK)
    return START + SYNC_TICK * k


def _next_force(after: datetime) -> datetime:
    day = after.replace(hour=FORCE_HOUR, minute=0, second=0, microsecond=0)
    return day if day > after else day + timedelta(days=1)  # the 02:00 force sync polls every active one


def score_push(
    name: str, parcels: list[Parcel], run: tuple[dict[str, list[datetime]], dict[str, list[datetime]]]
) -> Outcome:
    """Calls are the API calls (subscriptions and polls); delays are to the first push or poll after a change."""
    calls, learned = run
    out = score(name, parcels, learned)
    out.calls = sum(len(times) for times in calls.values())
    return out


def row(o: Outcome, delivered_truth: int, parcels: int) -> list[object]:
    hours = [d / 3600 for d in o.delays_s]
    return [
        o.name,
        o.calls,
        round(o.calls / parcels, 1),
        round(o.calls / delivered_truth, 1),
        round(statistics.median(hours) * 60, 1),
        round(percentile(hours, 0.9), 2),
        o.missed,
        o.seen_delivered,
    ]


def _delay(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="200 shipments instead of 500")
    parser.add_argument("--shipments", type=int, default=None)
    args = parser.parse_args()
    n = args.shipments or (200 if args.quick else 500)
    header("bench_cadence: adaptive cadence vs fixed polling over a simulated week")
    started = time.perf_counter()
    parcels = make_parcels(n, seed=11)
    check_against_sandbox(parcels)
    end = START + WEEK
    delivered_truth = sum(1 for p in parcels if p.delivered_at and p.delivered_at <= end)
    changes = sum(1 for p in parcels for at, _ in p.changes if at <= end)
    scenarios: dict[str, int] = {}
    for p in parcels:
        name = lifecycle.plan_for(p.carrier, p.number).scenario
        scenarios[name] = scenarios.get(name, 0) + 1

    default = CadenceConfig()
    # The same tiers, each checked 4x as often: how close adaptive gets to a 30-min poll's delay.
    quarter = dataclasses.replace(
        default,
        accepted=default.accepted / 4,
        in_transit=default.in_transit / 4,
        delivery_attempt=default.delivery_attempt / 4,
        exception=default.exception / 4,
        pickup=default.pickup / 4,
        not_yet_in_system=default.not_yet_in_system / 4,
    )
    strategies: list[tuple[str, Callable[[], dict[str, list[datetime]]]]] = [
        ("fixed 30 min poll", lambda: fixed_poll(parcels, timedelta(minutes=30))),
        ("fixed 1 h poll", lambda: fixed_poll(parcels, timedelta(hours=1))),
        ("fixed 2 h poll", lambda: fixed_poll(parcels, timedelta(hours=2))),
        ("fixed 4 h poll", lambda: fixed_poll(parcels, timedelta(hours=4))),
        ("adaptive, default [sync.cadence]", lambda: adaptive(parcels, default)),
        ("adaptive, default, no 02:00 force sync", lambda: adaptive(parcels, default, force=False)),
        ("adaptive, every tier / 4", lambda: adaptive(parcels, quarter)),
    ]
    outcomes = {name: score(name, parcels, run()) for name, run in strategies}
    push_outcomes = {}
    for safety_h in PUSH_SAFETY_H:
        cad = dataclasses.replace(default, push_safety=safety_h * 3600.0)
        for loss in PUSH_LOSS:
            name = f"push, {loss:.0%} lost, safety poll {safety_h}h"
            push_outcomes[name] = score_push(name, parcels, push_first(parcels, cad, loss=loss, seed=3))
    for name, kwargs in (
        ("push, 1% lost, 24h, + 02:00 force sync", {"force": True}),
        ("push, 1% lost, 24h, no resubscribe after EX", {"resubscribe_after_ex": False}),
    ):
        cad = dataclasses.replace(default, push_safety=24 * 3600.0)
        push_outcomes[name] = score_push(name, parcels, push_first(parcels, cad, loss=0.01, seed=3, **kwargs))

    print(
        f"\n## {n} shipments created over the first 48 h; {delivered_truth} delivered within the week;"
        f" {changes} status changes; scenarios {dict(sorted(scenarios.items()))}"
    )
    headers = ["strategy", "API calls", "calls/parcel", "calls/delivered", "median delay min", "p90 delay h"]
    headers += ["changes missed", "seen delivered"]
    print(table(headers, [row(o, delivered_truth, n) for o in outcomes.values()]))
    print("\n## push first, polling as the safety net ([sync.cadence] push_safety), by share of pushes lost")
    print(table(headers, [row(o, delivered_truth, n) for o in push_outcomes.values()]))
    print("\n## the frontier: API calls per delivered parcel against the p90 delay in noticing a change")
    frontier = [
        [o.name, round(o.calls / delivered_truth, 1), _delay(percentile(o.delays_s, 0.9)), o.missed]
        for o in (*outcomes.values(), *push_outcomes.values())
    ]
    print(table(["strategy", "calls/delivered", "p90 delay", "missed"], sorted(frontier, key=lambda r: -r[1])))
    print(f"(simulated in {time.perf_counter() - started:.1f} s; truth checked against lifecycle.tracking_body)")

    fixed30 = outcomes["fixed 30 min poll"]
    ada = outcomes["adaptive, default [sync.cadence]"]
    tuned = outcomes["adaptive, every tier / 4"]
    med = {k: statistics.median(o.delays_s) / 60 for k, o in outcomes.items()}
    calls_ratio = ada.calls / fixed30.calls
    print()
    verdict(
        calls_ratio <= 0.6,
        f"default adaptive makes {calls_ratio:.2f} x the calls per delivered parcel of a fixed 30-min poll"
        f" ({ada.calls / delivered_truth:.1f} vs {fixed30.calls / delivered_truth:.1f}; target: markedly fewer,"
        " <= 0.6 x)",
    )
    same_delay = med["adaptive, default [sync.cadence]"] <= 1.25 * med["fixed 30 min poll"]
    verdict(
        same_delay,
        f"for the same delay? default adaptive median {med['adaptive, default [sync.cadence]']:.0f} min vs fixed"
        f" 30 min {med['fixed 30 min poll']:.0f} min (target: within 1.25 x)",
    )
    # At equal delay: compare each adaptive variant with the fixed poll whose median delay is closest.
    for name, o in (
        ("adaptive, default [sync.cadence]", ada),
        ("adaptive, every tier / 4", tuned),
    ):
        peer = min(
            (k for k in outcomes if k.startswith("fixed")),
            key=lambda k: abs(med[k] - med[name]),
        )
        print(
            f"# {name}: median delay {med[name]:.0f} min, {o.calls} calls; nearest fixed poll by delay:"
            f" {peer} ({med[peer]:.0f} min, {outcomes[peer].calls} calls) -> {o.calls / outcomes[peer].calls:.2f} x"
            " the calls"
        )
    verdict(
        calls_ratio <= 0.6 and same_delay,
        "target 'markedly fewer calls per delivered parcel than a fixed 30-min poll, for the same delay':"
        f" {calls_ratio:.2f} x the calls at {med['adaptive, default [sync.cadence]'] / med['fixed 30 min poll']:.1f} x"
        " the median delay (overall)",
    )
    best = push_outcomes["push, 1% lost, safety poll 24h"]
    p90_min = percentile([d / 60 for d in best.delays_s], 0.9)
    verdict(
        best.calls / delivered_truth <= 5 and p90_min <= 5 and best.missed == 0,
        f"push at 1% loss (push_safety 24h, the default): {best.calls / delivered_truth:.1f} calls per delivered"
        f" parcel, p90 delay {p90_min * 60:.0f} s, {best.missed} changes missed (target <= 5, <= 5 min, 0)",
    )


if __name__ == "__main__":
    main()
