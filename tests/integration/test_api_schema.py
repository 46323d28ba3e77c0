"""
schemathesis against a real daemon subprocess over its real Unix socket: every operation in the
document the daemon serves at /v1/openapi.json (so a better document is picked up as it lands),
a bounded number of generated requests each, no 5xx, answers checked against the document.

Bounded: FUZZ_EXAMPLES (default 25) examples per operation, derandomized so every run sends the
same requests; raise it by hand for a deeper search (FUZZ_EXAMPLES=500 uv run pytest -m fuzz).
"""

from __future__ import annotations

import os
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
    env = {**os.environ, **quiet_daemon_env(state, "http://127.0.0.1:9")}
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
