"""What the WebSocket and REST handlers both read from a request, safely: the
credential (``?token=`` or ``Authorization: Bearer``), query arguments that may not be
UTF-8, and uncaught errors logged without the request's token."""

from __future__ import annotations

import logging
from typing import Any

import tornado.web

from vmws.errors import AuthError
from vmws.logs import redact

__all__ = ["bearer_token", "credential", "query_argument", "UndecodableQuery", "log_exception_redacted"]

# The handlers' logger: uncaught errors of either kind of handler are logged under it.
log = logging.getLogger("vmws.handlers")


def bearer_token(request: Any) -> str | None:
    header: str = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class UndecodableQuery(AuthError):
    """A query argument whose percent-encoded bytes are not UTF-8: no credential can be read
    from such a URL (HTTP 400, or close 4001 after the upgrade)."""

    def __init__(self) -> None:
        super().__init__("the URL's query string is not valid UTF-8 once percent-decoded")


def query_argument(request: Any, name: str, *, strip: bool = True) -> str | None:
    """The last value of query argument ``name``, or None; ``UndecodableQuery`` if any
    argument of the URL is not UTF-8. Tornado's own getter raises with the raw value
    (a ticket, say) in its message, which then reaches the log."""
    arguments: dict[str, list[bytes]] = request.query_arguments
    decoded: dict[str, str] = {}
    for key, values in arguments.items():
        for value in values:
            try:
                decoded[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise UndecodableQuery() from None
    found = decoded.get(name)
    return found.strip() if found is not None and strip else found


def credential(request: Any) -> str | None:
    """What a request presents to authenticate: ``?token=`` (a token or a ticket: browsers
    cannot set headers on a WebSocket), else an ``Authorization: Bearer`` token."""
    return query_argument(request, "token") or bearer_token(request)


def log_exception_redacted(handler: tornado.web.RequestHandler, typ: Any, value: Any, tb: Any) -> None:
    """Tornado's own version prints the request URI, token included."""
    if isinstance(value, tornado.web.HTTPError):
        # A refusal (405, a path that is not UTF-8): the access log line is the one line
        # it gets. Tornado's message for it may quote the raw input.
        return
    log.error(
        "uncaught error on %s %s", handler.request.method, redact(handler.request.uri or ""), exc_info=(typ, value, tb)
    )
