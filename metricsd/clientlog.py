"""One concise log line per client error, a full traceback only for metricsd's own bugs.

aiohttp logs every malformed request and every aborted body with `logger.exception`, a
25-line traceback each, so anyone who can reach the port can flood the log and bury real
errors. This logger adapter (passed to aiohttp's request handler as `logger`) turns
errors a client caused into one INFO line and leaves everything else as it was.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

from aiohttp import http_exceptions

log = logging.getLogger("metricsd.http")

# Raised because of what a client sent or how its connection ended, never by a bug here.
CLIENT_FAULTS: tuple[type[BaseException], ...] = (
    http_exceptions.HttpProcessingError,  # bad request line, headers, chunking, lengths
    ConnectionError,  # reset or closed while we read or wrote
    EOFError,
)


def client_fault(exc: BaseException | None) -> bool:
    """True when `exc` (or what caused it) is the client's doing."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, CLIENT_FAULTS):
            code = getattr(exc, "code", 400)
            return not isinstance(code, int) or code < 500
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def one_line(exc: BaseException) -> str:
    """`BadHttpMessage: Invalid header value char`: one line, bounded, and without the
    bytes aiohttp quotes after it (they may be part of a credential)."""
    if isinstance(exc, http_exceptions.HttpProcessingError):
        lines = str(exc.message).strip().splitlines() or [""]
        text = lines[0].rstrip(": ")
    else:
        text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:200]


def _format(msg: object, args: tuple[object, ...]) -> str:
    try:
        return str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        return str(msg)


class ConciseServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, with client errors as one line and no traceback."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or logging.getLogger("aiohttp.server"), {})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if exc is not None and client_fault(exc):
            log.info("client error: %s: %s", _format(msg, args), one_line(exc))
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if isinstance(exc_info, BaseException) and client_fault(exc_info):
            log.info("client error: %s: %s", _format(msg, args), one_line(exc_info))
            return
        self.logger.error(msg, *args, **kwargs)
