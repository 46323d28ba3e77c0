"""
schemathesis against a real daemon subprocess over its real Unix socket: every operation in the
document the daemon serves at /v1/openapi.json (so a better document is picked up as it lands),
a bounded number of generated requests each, no 5xx, answers checked against the document.

Bounded: FUZZ_EXAMPLES (default 25) examples per operation, derandomized so every run sends the
same requests; raise it by hand for a deeper search (FUZZ_EXAMPLES=500 uv run pytest -m fuzz).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openapi_spec_validator
import pytest
import schemathesis
from conftest import quiet_daemon_env
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.fuzz

BASE_URL = "http://shiptrackd"
STREAMING = {("GET", "/v1/events")}  # endless answers: checked on their head, not read to the end
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class DaemonUnderTest:
    socket: Path
    log: Path
    http: httpx.Client


@pytest.fixture
def daemon_subprocess(tmp_path: Path) -> Iterator[DaemonUnderTest]:
    """`python -m shiptrackd` with quiet loops and an unreachable provider, on a socket in a short /tmp dir."""
    state = Path(tempfile.mkdtemp(prefix="st-fuzz-", dir="/tmp"))
    # One [[outbound]] endpoint nobody listens at: the endpoints and deliveries routes have something to show.
    config = state / "shiptrackd.toml"
    config.write_text(
        '[[outbound]]\nname = "fuzz"\nurl = "http://127.0.0.1:9/hooks"\n'
        'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\nretry_schedule = ["0s"]\n'
    )
    env = {**os.environ, **quiet_daemon_env(state, "http://127.0.0.1:9"), "SHIPTRACK_CONFIG": str(config)}
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "shiptrackd"], env=env, stdout=out, stderr=subprocess.STDOUT)
    path = state / "ctl.sock"
    try:
        deadline = time.monotonic() + 15
        while not accepts(path):  # httpx leaks a socket on each refused connect: probe by hand first
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "daemon not listening in 15 s"
            time.sleep(0.05)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url=BASE_URL, timeout=10) as http:
            while http.get("/v1/status").json()["state"] != "running":  # the socket answers before the loops run
                assert time.monotonic() < deadline, "daemon not running in 15 s"
                time.sleep(0.05)
            yield DaemonUnderTest(path, log, http)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(state, ignore_errors=True)


def accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def send(http: httpx.Client, case: Any) -> httpx.Response:
    """The generated request over the Unix socket; a streaming answer is cut after its head."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    request = http.build_request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
        data=kwargs.get("data") if isinstance(kwargs.get("data"), dict) else None,
    )
    streaming = (case.operation.method.upper(), case.operation.path) in STREAMING
    response = http.send(request, stream=streaming)
    if streaming:
        if response.status_code >= 300:
            response.read()
        response.close()
    return response


def is_health_as_status(case: Any, response: httpx.Response) -> bool:
    """A 503 that is /v1/health?http_status=1 reporting critical or unknown: the answer asked for, not a fault."""
    if (case.operation.method.upper(), case.operation.path) != ("GET", "/v1/health") or response.status_code != 503:
        return False
    try:
        return response.json().get("level") in ("critical", "unknown")
    except ValueError:
        return False


def test_generated_requests_over_the_socket_get_no_5xx_and_match_the_document(
    daemon_subprocess: DaemonUnderTest,
) -> None:
    """Every operation of the served document, fuzzed over the real socket: no 5xx, answers as documented."""
    http = daemon_subprocess.http
    document = http.get("/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    examples = int(os.environ.get("FUZZ_EXAMPLES", "25"))
    fuzzed: list[str] = []
    unusable: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the document describes too poorly to generate for
            unusable.append(str(result.err()).splitlines()[0])
            continue
        operation = result.ok()

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = send(http, case)
            health_503 = is_health_as_status(case, response)
            checks = [c for c in CHECKS if not (health_503 and c is not_a_server_error)]
            if response.is_stream_consumed or not isinstance(response.stream, httpx.SyncByteStream):
                case.validate_response(response, checks=checks)
            else:
                assert response.status_code < 500, case.as_curl_command()

        check()
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    assert len(fuzzed) >= 10, (fuzzed, unusable)  # the document lists the routes; most must be fuzzable
    log = daemon_subprocess.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


# --- conformance: every route's real answers, success and error, against the served document ----------


RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


class Conformance:
    """Checks answers against the document and remembers which (operation, status) pairs it saw."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, template: str, response: httpx.Response, body: Any = None) -> Any:
        """The answer is a documented status, in a documented media type, and fits that schema."""
        operation = self.document["paths"][template][method.lower()]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {template} answered an undocumented {status}"
        media = response.headers["content-type"].split(";")[0]
        content = operation["responses"][status]["content"]
        assert media in content, f"{method} {template} {status} answered {media}, documented {list(content)}"
        value = response.json() if body is None else body
        assert isinstance(value, dict), f"{method} {template} {status} answered a top-level {type(value).__name__}"
        self.validate(content[media]["schema"], value, f"{method} {template} {status}")
        self.seen.add((method.upper(), template, response.status_code))
        return value

    def validate(self, schema: dict[str, Any], value: Any, where: str) -> None:
        validator = jsonschema.Draft202012Validator(
            {**schema, "components": self.document["components"]}, format_checker=jsonschema.FormatChecker()
        )
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(value)]
        assert errors == [], f"{where}: {errors}"
        stamps = [v for k, v in walk(value) if isinstance(v, str) and (k.endswith("_at") or k == "at")]
        assert all(RFC3339_Z.fullmatch(v) for v in stamps), f"{where}: timestamps {stamps}"


def answer_kinds(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The JSON types an answer *schema* allows at its top level (following $ref, anyOf and oneOf)."""
    if "$ref" in schema:
        return answer_kinds(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    members = [*schema.get("anyOf", ()), *schema.get("oneOf", ())]
    if members:
        return set().union(*(answer_kinds(document, m) for m in members))
    kind = schema.get("type", "any")
    return set(kind) if isinstance(kind, list) else {kind}


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of every object inside *value*."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_the_document_passes_openapi_spec_validator(daemon_subprocess: DaemonUnderTest) -> None:
    """/v1/openapi.json is a valid OpenAPI 3.1 document, with a schema for every answer and every route documented."""
    document = daemon_subprocess.http.get("/v1/openapi.json").json()
    openapi_spec_validator.validate(document)
    undocumented = [
        f"{method.upper()} {path}"
        for path, ops in document["paths"].items()
        for method, op in ops.items()
        if op.get("x-undocumented")
    ]
    assert undocumented == []
    not_objects = {
        f"{method.upper()} {path} {status}: {kinds}"
        for path, ops in document["paths"].items()
        for method, op in ops.items()
        for status, answer in op["responses"].items()
        for media in answer.get("content", {}).values()
        if (kinds := answer_kinds(document, media["schema"])) != {"object"}
    }
    assert not_objects == set(), "every answer is a JSON object, never a top-level array"
    assert document["paths"]["/v1/events"]["get"]["responses"]["200"]["content"].keys() == {"application/x-ndjson"}


def test_every_route_answers_as_documented_on_success_and_error(
    daemon_subprocess: DaemonUnderTest, tmp_path: Path
) -> None:
    """A real daemon's answers, success and error, of every operation in the document fit it."""
    http = daemon_subprocess.http
    doc = http.get("/v1/openapi.json").json()
    c = Conformance(doc)
    c.check("GET", "/v1/openapi.json", http.get("/v1/openapi.json"))
    c.check("GET", "/v1/status", http.get("/v1/status"))
    c.check("GET", "/v1/status", http.get("/v1/status", headers={"Origin": "http://evil.example"}))
    c.check("GET", "/v1/loops", http.get("/v1/loops"))
    for action in ("pause", "resume", "trigger"):
        c.check("POST", "/v1/loops/{name}/{action}", http.post(f"/v1/loops/health/{action}"))
    c.check("POST", "/v1/loops/{name}/{action}", http.post("/v1/loops/health/explode"))
    c.check("POST", "/v1/loops/{name}/{action}", http.post("/v1/loops/nope/pause"))

    one = {"carrier_code": "ups", "tracking_number": "1ZCONFORM0001", "reference": "A-1"}
    added = c.check("POST", "/v1/shipments", http.post("/v1/shipments", json=one))
    shipment_id = added["added"][0]["id"]
    c.check("POST", "/v1/shipments", http.post("/v1/shipments", json=one))  # 409 duplicate
    c.check("POST", "/v1/shipments", http.post("/v1/shipments", json=[one, {"carrier_code": "x"}]))  # 200
    c.check("POST", "/v1/shipments", http.post("/v1/shipments", content=b"{", headers=JSON))
    c.check("POST", "/v1/shipments", http.post("/v1/shipments", content=b"a=b", headers=FORM))
    too_big = b"[" + b" " * (8 * 1024 * 1024) + b"]"  # over MAX_BODY_BYTES: 413
    c.check("POST", "/v1/shipments", http.post("/v1/shipments", content=too_big, headers=JSON))
    c.check("GET", "/v1/shipments", http.get("/v1/shipments", params={"limit": 1}))
    c.check("GET", "/v1/shipments", http.get("/v1/shipments", params={"cursor": "page-2"}))
    c.check("GET", "/v1/shipments/{id}", http.get(f"/v1/shipments/{shipment_id}"))
    c.check("GET", "/v1/shipments/{id}", http.get("/v1/shipments/ship_nope"))
    c.check("GET", "/v1/shipments/{id}/why", http.get(f"/v1/shipments/{shipment_id}/why"))
    c.check("GET", "/v1/shipments/{id}/why", http.get("/v1/shipments/ship_nope/why"))
    c.check("POST", "/v1/shipments/{id}/retrack", http.post(f"/v1/shipments/{shipment_id}/retrack"))
    c.check("POST", "/v1/shipments/{id}/retrack", http.post("/v1/shipments/ship_nope/retrack"))
    set_ups = {"carrier_code": "ups"}
    c.check("POST", "/v1/shipments/{id}/carrier", http.post(f"/v1/shipments/{shipment_id}/carrier", json=set_ups))
    c.check("POST", "/v1/shipments/{id}/carrier", http.post("/v1/shipments/ship_nope/carrier", json=set_ups))
    c.check("POST", "/v1/shipments/{id}/carrier", http.post(f"/v1/shipments/{shipment_id}/carrier", json={}))
    # Without a carrier, where no account detects one (the sandbox's ShipEngine): 400 carrier_required.
    refused = c.check("POST", "/v1/shipments", http.post("/v1/shipments", json={"tracking_number": "1ZNOCARRIER1"}))
    assert refused["error"]["code"] == "carrier_required"

    c.check("POST", "/v1/sync", http.post("/v1/sync", json={"dry_run": True}))
    started = c.check("POST", "/v1/sync", http.post("/v1/sync", json={}))
    c.check("POST", "/v1/sync", http.post("/v1/sync", json={"shipments": [1]}))
    c.check("GET", "/v1/runs", http.get("/v1/runs"))
    c.check("GET", "/v1/runs", http.get("/v1/runs", params={"limit": "x"}))
    c.check("GET", "/v1/runs/{id}", http.get(f"/v1/runs/{started['run_id']}"))
    c.check("GET", "/v1/runs/{id}", http.get("/v1/runs/999999"))
    c.check("GET", "/v1/stats", http.get("/v1/stats"))
    c.check("POST", "/v1/reload", http.post("/v1/reload"))

    target = tmp_path / "backup.db"
    c.check("POST", "/v1/backup", http.post("/v1/backup", json={"path": str(target)}))
    c.check("POST", "/v1/backup", http.post("/v1/backup", json={"path": str(target)}))  # 409: exists
    c.check("POST", "/v1/backup", http.post("/v1/backup", json={"path": "relative.db"}))

    # Outbound webhooks (issue 11): the one shipment added above left a delivery that went dead.
    c.check("GET", "/v1/endpoints", http.get("/v1/endpoints"))
    c.check("POST", "/v1/endpoints/{name}/test", http.post("/v1/endpoints/fuzz/test"))  # 200, ok false
    c.check("POST", "/v1/endpoints/{name}/test", http.post("/v1/endpoints/nope/test"))
    c.check("POST", "/v1/endpoints/{name}/enable", http.post("/v1/endpoints/fuzz/enable"))
    c.check("POST", "/v1/endpoints/{name}/enable", http.post("/v1/endpoints/nope/enable"))
    deadline = time.monotonic() + 15
    while not (dead := http.get("/v1/deliveries", params={"state": "dead"}).json()["deliveries"]):
        assert time.monotonic() < deadline, "no dead delivery in 15 s"
        time.sleep(0.05)
    c.check("GET", "/v1/deliveries", http.get("/v1/deliveries"))
    c.check("GET", "/v1/deliveries", http.get("/v1/deliveries", params={"state": "lost"}))
    c.check("GET", "/v1/deliveries/{id}", http.get(f"/v1/deliveries/{dead[0]['id']}"))
    c.check("GET", "/v1/deliveries/{id}", http.get("/v1/deliveries/999999"))
    c.check("POST", "/v1/deliveries/{id}/retry", http.post(f"/v1/deliveries/{dead[0]['id']}/retry"))
    c.check("POST", "/v1/deliveries/{id}/retry", http.post("/v1/deliveries/999999/retry"))
    c.check("POST", "/v1/deliveries/retry", http.post("/v1/deliveries/retry", json={"dead": True}))
    c.check("POST", "/v1/deliveries/retry", http.post("/v1/deliveries/retry", json={}))
    replay = {"endpoint": "fuzz", "since": "1h"}
    c.check("POST", "/v1/deliveries/replay", http.post("/v1/deliveries/replay", json=replay))
    c.check("POST", "/v1/deliveries/replay", http.post("/v1/deliveries/replay", json={**replay, "endpoint": "x"}))
    # Bodies against their request types (RetryDeadBody, ReplayBody): a wrong field is a 400 in the error shape.
    wrong_bodies = [
        ("/v1/deliveries/retry", {"dead": "yes"}),
        ("/v1/deliveries/retry", [{"dead": True}]),
        ("/v1/deliveries/replay", {**replay, "since": 3600}),
        ("/v1/deliveries/replay", {**replay, "since": "91d"}),
    ]
    for url, wrong in wrong_bodies:
        refused = http.post(url, json=wrong)
        assert refused.status_code == 400, (url, wrong, refused.text)
        assert c.check("POST", url, refused)["error"]["code"] == "invalid_request"

    c.check("GET", "/v1/health", http.get("/v1/health"))
    c.check("GET", "/v1/health", http.get("/v1/health", params={"fresh": 1, "check_stale": 1, "http_status": 1}))
    c.check("GET", "/v1/health", http.get("/v1/health", params={"stale_limit": 0}))
    c.check("POST", "/v1/alerts/evaluate", http.post("/v1/alerts/evaluate", params={"wait": 0}))
    c.check("POST", "/v1/alerts/evaluate", http.post("/v1/alerts/evaluate", params={"wait": -1}))
    c.check("POST", "/v1/alerts/test", http.post("/v1/alerts/test", params={"wait": 0}))
    c.check("POST", "/v1/alerts/test", http.post("/v1/alerts/test", params={"wait": 301}))
    c.check("GET", "/v1/alerts", http.get("/v1/alerts"))
    c.check("GET", "/v1/alerts", http.get("/v1/alerts", params={"limit": 0}))
    silence = c.check("POST", "/v1/silences", http.post("/v1/silences", json={"check": "store", "duration": "1h"}))
    c.check("POST", "/v1/silences", http.post("/v1/silences", json={"check": "nope", "duration": "1h"}))
    c.check("GET", "/v1/silences", http.get("/v1/silences", params={"all": 1}))
    c.check("GET", "/v1/silences", http.get("/v1/silences", params={"all": "perhaps"}))
    c.check("DELETE", "/v1/silences/{id}", http.delete(f"/v1/silences/{silence['id']}"))
    c.check("DELETE", "/v1/silences/{id}", http.delete(f"/v1/silences/{silence['id']}"))
    c.check("DELETE", "/v1/shipments/{id}", http.delete(f"/v1/shipments/{shipment_id}"))
    c.check("DELETE", "/v1/shipments/{id}", http.delete(f"/v1/shipments/{shipment_id}"))

    c.check("GET", "/v1/webhooks", http.get("/v1/webhooks"))  # webhooks off: enabled false
    c.check("POST", "/v1/webhooks/setup", http.post("/v1/webhooks/setup"))  # 409: off

    c.check("GET", "/v1/events", http.get("/v1/events", params={"since": "soon"}))
    kinds = check_event_lines(c, http)
    assert {"loop.changed", "shipments.added", "sync.started", "silence.added", "heartbeat"} <= kinds

    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    succeeded = {(m, p) for m, p, status in c.seen if status < 300}
    failed = {(m, p) for m, p, status in c.seen if status >= 400}
    # A successful `webhooks setup` needs [webhooks] on and a provider: test_push_receiver runs it against the sandbox.
    assert operations - succeeded - {("POST", "/v1/webhooks/setup")} == set(), "operations never seen succeeding"
    only_common_errors = {
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/stats"),
        ("GET", "/v1/loops"),
        ("POST", "/v1/reload"),
        ("GET", "/v1/endpoints"),
        ("GET", "/v1/webhooks"),
    }
    assert operations - failed - only_common_errors == set(), "operations never seen failing"
    log = daemon_subprocess.log.read_text(errors="replace")
    assert "does not fit its wire type" not in log and "Traceback" not in log, log[-3000:]


def check_event_lines(c: Conformance, http: httpx.Client) -> set[str]:
    """Replay the event stream from the start until its first heartbeat; every line fits the document."""
    kinds: set[str] = set()
    with http.stream("GET", "/v1/events", params={"since": 0, "heartbeat": 0.2}) as response:
        template = ("GET", "/v1/events")
        operation = c.document["paths"][template[1]]["get"]
        assert str(response.status_code) in operation["responses"]
        content = operation["responses"][str(response.status_code)]["content"]
        assert response.headers["content-type"] in content
        schema = content[response.headers["content-type"]]["schema"]
        for line in response.iter_lines():
            event = json.loads(line)
            c.validate(schema, event, f"event {event.get('type')}")
            kinds.add(event["type"])
            if event["type"] == "heartbeat":
                break
    c.seen.add(("GET", "/v1/events", 200))
    return kinds


JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
