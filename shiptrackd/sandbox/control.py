"""
The sandbox's `/_sandbox/*` control routes (stats, knobs, simulated time, pushes, sample shipments),
for tests and benchmarks that run it out of process: no key, not counted, not delayed, not faulted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from shiptrackd.sandbox.samples import sample_shipments
from shiptrackd.sandbox.server import Reply, Request
from shiptrackd.units import format_rfc3339

if TYPE_CHECKING:
    from shiptrackd.sandbox.app import Sandbox


def json_bytes(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def control_reply(sandbox: Sandbox, request: Request, request_id: str) -> Reply:
    """The `/_sandbox/*` routes; bad input is a 400 with a plain message."""
    headers = [("x-shipengine-requestid", request_id)]
    route = (request.method, request.path)
    try:
        if route == ("GET", "/_sandbox/stats"):
            by_number = request.query.get("by_number", ["0"])[-1] not in ("0", "false", "")
            return Reply(200, json_bytes(sandbox.stats.as_dict(by_number=by_number)), headers)
        if route == ("GET", "/_sandbox/config"):
            return Reply(200, json_bytes(sandbox.config()), headers)
        if route == ("POST", "/_sandbox/config"):
            knobs = json.loads(request.body or b"{}")
            if not isinstance(knobs, dict):
                raise ValueError("expected a JSON object of knobs")
            sandbox.configure(**knobs)
            return Reply(200, json_bytes(sandbox.config()), headers)
        if route == ("POST", "/_sandbox/advance"):
            units = {name: float(values[-1]) for name, values in request.query.items()}
            now = sandbox.advance(**units)
            return Reply(200, json_bytes({"now": format_rfc3339(now)}), headers)
        if route == ("POST", "/_sandbox/reset"):
            sandbox.stats.reset()
            return Reply(200, json_bytes(sandbox.stats.as_dict()), headers)
        if request.path in ("/_sandbox/easypost/config", "/_sandbox/aftership/config"):
            dialect = sandbox.easypost if "easypost" in request.path else sandbox.aftership
            if request.method == "POST":
                knobs = json.loads(request.body or b"{}")
                if not isinstance(knobs, dict):
                    raise ValueError("expected a JSON object of knobs")
                dialect.configure(knobs)
            return Reply(200, json_bytes({"ok": True}), headers)
        if route == ("GET", "/_sandbox/pushes"):
            return Reply(200, json_bytes(sandbox.pusher.stats.as_dict()), headers)
        if route == ("POST", "/_sandbox/pushes"):
            knobs = json.loads(request.body or b"{}")
            if not isinstance(knobs, dict):
                raise ValueError('expected a JSON object like {"faults": {"bad_signature": 0.5}}')
            sandbox.pusher.configure_faults(knobs.get("faults", {}))
            sandbox.pusher.wake()
            return Reply(200, json_bytes(sandbox.pusher.stats.as_dict()), headers)
        if route == ("GET", "/_sandbox/shipments"):
            count = int(request.query.get("n", ["50"])[-1])
            return Reply(200, json_bytes(sample_shipments(count)), headers)
    except (ValueError, TypeError) as exc:
        return Reply(400, json_bytes({"error": {"code": "invalid_request", "message": str(exc)}}), headers)
    return Reply(404, json_bytes({"error": {"code": "not_found", "message": f"no route {request.path}"}}), headers)
