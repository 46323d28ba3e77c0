"""
A ShipEngine-compatible tracking API on loopback, for tests, the demo and the benchmarks.

In process::

    async with Sandbox(api_key="TEST_sandbox", rate_limit=None, latency_s=0.0).serve() as sb:
        sb.base_url; sb.stats; sb.advance(hours=30); sb.configure(latency_s=0.2, faults={"500": 0.05})

Out of process: ``python -m shiptrackd.sandbox --port 8999 [--rate-limit 50/s] [--latency 20ms]``,
steered over HTTP with ``GET /_sandbox/stats[?by_number=1]``, ``GET|POST /_sandbox/config``
(JSON knobs), ``POST /_sandbox/advance?hours=N`` (or seconds/minutes/days),
``POST /_sandbox/reset`` (zero the counters) and ``GET /_sandbox/shipments?n=50``. Those need
no API key and are not counted.

API: ``GET /v1/tracking?carrier_code=..&tracking_number=..``, ``GET /v1/carriers`` (a cheap
authenticated call for health checks), ``GET /v1/labels/{id}/track`` (always 404). Carriers:
ups, fedex, usps, stamps_com (answered as usps), dhl_express, ontrac, canada_post.

Magic substrings of the tracking number (case-insensitive; first match wins, in this order):

============  =================================================================
NOTFOUND      404, standard error body (invalid_identifier)
UNSUPPORTED   400 tracking_not_supported from the carrier (an "unknown number")
REJECTED      400 invalid_field_value from the carrier (permanent)
FORBIDDEN     403 security/forbidden
LEAKKEY       400 whose message echoes the request's API-Key (clients must scrub it)
FAIL500       500, standard error body
FAIL503       503, standard error body
ODD500        500 with the singular ``{"error": {"message": ...}}`` body
FLAKY         503 on the first 2 requests for that number, then normal
RATELIMIT     429 with ``Retry-After: 2`` (independent of the rate-limit knob)
RESET         TCP reset (SO_LINGER 0 + close) instead of an answer
HANG          never answers; the server closes only after the client does
SLOW          answers normally after an extra 2 s
BADJSON       200 with truncated JSON
BADSCHEMA     200 JSON with ``status_code: "ZZ"``
BADEVENTS     200 JSON whose ``events`` is an object
BADDATE       200 JSON whose newest event has ``occurred_at: "last Tuesday afternoon"``
============  =================================================================

Lifecycle pins (see lifecycle.py): LCNORMAL, LCEXCEPTION, LCATTEMPT, LCPICKUP, LCSTUCK, LCLOST
follow that scenario over simulated time from first sight; DELIVERED, INTRANSIT, EXCEPTION,
ATTEMPTED, PICKUP, NOTYET, LOST stay at that status forever. Other numbers get a scenario
from a hash: delivered 50%, exception-then-recovery 12%, delivery-attempt 12%, pickup point
10%, stuck NY 8%, lost (EX forever) 8%.

Other providers' dialects, on their own path prefixes of the same server (same clock, stats
and random faults; see each module): EasyPost under ``/v2`` (sandbox/easypost.py, knobs via
``sb.easypost.configure({...})`` or ``POST /_sandbox/easypost/config``) and AfterShip 2026-07
under ``/tracking/2026-07`` (sandbox/aftership.py, ``POST /_sandbox/aftership/config``). Their
signed webhooks go out through sandbox/pushes.py: ``GET /_sandbox/pushes`` counts them,
``POST /_sandbox/pushes`` ``{"faults": {"bad_signature"|"duplicate"|"drop": p}}`` sets push faults.

Knobs (constructor, ``configure()`` or ``POST /_sandbox/config``): ``api_key`` (None accepts
any; wrong or missing -> 401), ``rate_limit`` ("50/s", "200/min", None; over it -> 429 with
an integer Retry-After), ``burst``, ``latency_s``, ``faults`` ({kind: probability} for the
kinds above in lower case, "500"/"503"/"429" for the status ones, drawn with a seeded RNG),
``seed``, ``time_scale`` (simulated seconds per real second; 0 freezes time).
"""

from __future__ import annotations

from shiptrackd.sandbox.app import KNOBS, Sandbox
from shiptrackd.sandbox.faults import FAULT_KINDS, MAGIC_SUBSTRINGS
from shiptrackd.sandbox.samples import sample_shipments
from shiptrackd.sandbox.state import SandboxStats

__all__ = ["FAULT_KINDS", "KNOBS", "MAGIC_SUBSTRINGS", "Sandbox", "SandboxStats", "sample_shipments"]
