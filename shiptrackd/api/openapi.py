"""The OpenAPI document of the control API, built from its routes."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from .. import __version__


def openapi_spec(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = route.path.replace("{id:int}", "{id}")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = {
                "operationId": f"{route.name}_{method.lower()}",
                "responses": {
                    "200": {"description": "OK, JSON body"},
                    "default": {"description": 'error: {"error": {"code", "message"}}'},
                },
            }
    return {"openapi": "3.1.0", "info": {"title": "shiptrackd control API", "version": __version__}, "paths": paths}
