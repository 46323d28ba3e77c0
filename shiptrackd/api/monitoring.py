"""Monitoring routes outside /v1: Prometheus metrics (on the socket and on `metrics_listen`)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..metrics import Exporter


def monitoring_routes(exporter: Exporter) -> list[Route]:
    async def metrics(request: Request) -> Response:
        return Response(await exporter.render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return [Route("/metrics", metrics, methods=["GET"])]
