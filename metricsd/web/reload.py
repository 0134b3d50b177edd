"""POST /-/reload: reload the configuration, as SIGHUP does (Prometheus's lifecycle route).

With admin auth configured, the admin middleware asks for it (401); without, only a
client on a loopback address may reload (403 otherwise), since anyone who reaches the
port could otherwise make metricsd re-read its files at will. 200 when the new
configuration is in force, 422 with the problems when it is not (the running one stays).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from metricsd import core


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:  # a Unix socket or no peer address
        return False


async def reload_config(request: web.Request) -> web.Response:
    admin = core.current_config(request.app).admin
    if admin.token is None and admin.basic_auth is None and not _loopback(request):
        return web.json_response(
            {"error": "reload is allowed from loopback only unless admin auth is configured",
             "reason": "forbidden"}, status=403)
    result = await core.reload(request.app)
    if result.ok:
        return web.json_response({"status": "success"})
    return web.json_response({"status": "error", "reason": "invalid_config",
                              "problems": list(result.problems)}, status=422)


def setup(app: web.Application) -> None:
    app.router.add_post("/-/reload", reload_config)
