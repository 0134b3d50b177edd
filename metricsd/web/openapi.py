"""GET /openapi.json: the OpenAPI 3.1 description of every route (web/openapi.yaml).

The YAML is read and encoded once at start-up; tests keep it and the router in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
SPEC_BYTES = web.AppKey("openapi_bytes", bytes)


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    """The document as a dict (YAML in the repo, so it can carry comments)."""
    with path.open(encoding="utf-8") as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SPEC_BYTES], content_type="application/json")


def setup(app: web.Application) -> None:
    app[SPEC_BYTES] = orjson.dumps(load_spec())
    app.router.add_get("/openapi.json", get_openapi)
