"""Liveness and readiness: /healthz answers while the loop runs, /readyz asks every part.

With admin auth configured, /readyz gives its details only to admins.
"""

from __future__ import annotations

from aiohttp import web

from metricsd.core import READINESS, current_config
from metricsd.web.auth import authorized


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 unless a required component is down (503); optional ones only degrade.

    A PostgreSQL target being down is optional: metricsd still takes beacons and serves
    /metrics (with metricsd_pg_up 0), so a load balancer must keep sending it traffic.
    """
    components = {name: check() for name, check in request.app[READINESS].items()}
    ready = all(c.get("ok", False) for c in components.values() if c.get("required", True))
    degraded = not all(c.get("ok", False) for c in components.values())
    state = "not ready" if not ready else "degraded" if degraded else "ready"
    admin = current_config(request.app).admin  # reloadable
    if (admin.token is not None or admin.basic_auth is not None) \
            and not authorized(request, admin):
        # Details (users, databases, hosts in connection errors, series counts) are for
        # admins; a load balancer only needs the status and which part is down.
        components = {name: {"ok": bool(c.get("ok", False)),
                             "required": bool(c.get("required", True))}
                      for name, c in components.items()}
    body = {"status": state, "components": components}
    return web.json_response(body, status=200 if ready else 503,
                             headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
