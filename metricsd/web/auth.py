"""Admin protection: one middleware guarding the page and the JSON views by path prefix.

Query text and alert labels can be sensitive, so when `admin.token` or
`admin.basic_auth` is set, `/`, `/v1/summary`, `/v1/postgres/*`, `/v1/alerts` and
`/static/*` need a bearer token (`Authorization: Bearer`, or `?token=` for a browser) or
HTTP Basic credentials. Matching by prefix covers routes other modules add later without
touching them; `/metrics`, `/healthz`, `/readyz` and the beacon routes keep their own rules.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from multidict import CIMultiDict

from metricsd.config import AdminConfig
from metricsd.core import current_config

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A path is protected when it equals one of these or continues it with "/".
PROTECTED_PREFIXES: tuple[str, ...] = (
    "/v1/summary", "/v1/postgres", "/v1/alerts", "/static", "/plans", "/v1/cache",
    "/reports",
    "/v1/vitals",  # vitals (issue 17): attribution names the site's elements and scripts
)
PROTECTED_EXACT: tuple[str, ...] = ("/", "/-/reload")
REALM = "metricsd"


def is_protected(path: str) -> bool:
    """True for the page, the JSON views and static files; False for everything else."""
    if path in PROTECTED_EXACT:
        return True
    return any(path == p or path.startswith(p + "/") for p in PROTECTED_PREFIXES)


def _route_path(request: web.Request) -> str | None:
    """The canonical path of the resource that matched, so `//v1/alerts` cannot slip by."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else None


def _same(presented: str, expected: str) -> bool:
    # Header text may hold undecodable bytes as lone surrogates (aiohttp decodes headers
    # with surrogateescape): compare the bytes as sent, so such a header is just wrong.
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


def authorized(request: web.Request, admin: AdminConfig) -> bool:
    """Whether the request carries the configured token or Basic credentials (constant-time)."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, credentials = header.partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    ok = False
    if admin.token is not None:
        presented = credentials if scheme == "bearer" else request.query.get("token", "")
        # Compare even an empty string, so a missing token costs the same as a wrong one.
        ok |= _same(presented, admin.token) and bool(presented)
    if admin.basic_auth is not None and scheme == "basic":
        try:
            raw = credentials.encode("ascii")
            decoded = base64.b64decode(raw, validate=True).decode("utf-8")
        except (UnicodeError, binascii.Error):  # non-ASCII header, bad base64, not UTF-8
            decoded = ""
        user, _, password = decoded.partition(":")
        # Both comparisons always run: the time taken does not say which part was wrong.
        user_ok = _same(user, admin.basic_auth.username)
        password_ok = _same(password, admin.basic_auth.password)
        ok |= user_ok & password_ok
    return ok


def _challenge(request: web.Request, admin: AdminConfig) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    if admin.basic_auth is not None:
        headers.add(hdrs.WWW_AUTHENTICATE, f'Basic realm="{REALM}", charset="UTF-8"')
    if admin.token is not None:
        headers.add(hdrs.WWW_AUTHENTICATE, f'Bearer realm="{REALM}"')
    headers[hdrs.CACHE_CONTROL] = "no-store"
    message = ("admin credentials required: send Authorization: Bearer <admin.token> "
               "(or ?token=) or HTTP Basic credentials from admin.basic_auth")
    if request.path.startswith("/v1/"):
        return web.json_response({"error": message, "reason": "unauthorized"}, status=401,
                                 headers=headers)
    return web.Response(status=401, text=message + "\n", headers=headers)


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse protected paths without valid admin credentials; pass everything else through."""
    admin = current_config(request.app).admin  # reloadable
    if admin.token is None and admin.basic_auth is None:
        return await handler(request)
    canonical = _route_path(request)
    if (is_protected(request.path) or (canonical is not None and is_protected(canonical))) \
            and not authorized(request, admin):
        return _challenge(request, admin)
    return await handler(request)
