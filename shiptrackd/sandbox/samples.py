"""
Sample shipments for `shiptrackd --demo`: plausible numbers that exercise every lifecycle and a few faults.

Deterministic (a fixed seed, and a number is kept only if its hash picks the scenario we
want), so every demo run shows the same story: most parcels deliver, some hit exceptions,
delivery attempts and pickup points, some never show up or get lost, two are unknown to the
carrier, one fails twice before answering, and one answers with a broken body.
"""

from __future__ import annotations

import itertools
import random

from shiptrackd.sandbox.lifecycle import SCENARIOS, plan_for

_CARRIERS = ("ups", "usps", "fedex", "stamps_com")
# Roughly the lifecycle weights, after one of each so even a short list covers them all.
_PATTERN = ("delivered",) * 10 + ("exception",) * 3 + ("attempt",) * 2 + ("pickup",) * 2 + ("stuck", "stuck", "lost")
_SPECIALS = (
    ("ups", "1Z4W7A89NOTFOUND01"),
    ("usps", "9400NOTFOUND0000000000002"),
    ("fedex", "7FLAKY000000003"),
    ("stamps_com", "9400BADSCHEMA000000000004"),
)


def sample_shipments(n: int = 50) -> list[dict[str, str]]:
    """`n` shipments as {carrier_code, tracking_number, reference}; the fault ones only when n >= 8."""
    if n < 0:
        raise ValueError("n must be >= 0")
    specials = list(_SPECIALS) if n >= 8 else []
    rng = random.Random(20250303)
    wanted = itertools.chain(SCENARIOS, itertools.cycle(_PATTERN))
    plain: list[tuple[str, str]] = []
    for i, scenario in zip(range(n - len(specials)), wanted, strict=False):
        carrier_code = _CARRIERS[i % len(_CARRIERS)]
        while True:  # about six draws on average: keep the first whose hash lands on `scenario`
            number = _number(carrier_code, rng)
            if plan_for(carrier_code, number).scenario == scenario:
                break
        plain.append((carrier_code, number))
    # Spread the fault cases through the list rather than bunching them at one end.
    rows = plain
    for k, special in enumerate(specials):
        rows.insert(min(len(rows), 5 + k * max(1, n // len(specials))), special)
    return [
        {"carrier_code": carrier_code, "tracking_number": number, "reference": f"ORDER-{10001 + i}"}
        for i, (carrier_code, number) in enumerate(rows)
    ]


def _number(carrier_code: str, rng: random.Random) -> str:
    """Digits after a carrier-style prefix: digits can never spell a magic substring."""
    if carrier_code == "ups":
        return f"1Z4W7A89{rng.randrange(10**10):010d}"
    if carrier_code == "fedex":
        return f"7{rng.randrange(10**11):011d}"
    return f"9400{rng.randrange(10**18):018d}"  # USPS-style 22 digits, also for stamps_com
