"""Logging set-up: text or JSON lines, and an access log that never shows a token."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson

__all__ = ["configure_logging", "redact", "log_request"]

log = logging.getLogger("vmws")
access_log = logging.getLogger("vmws.access")

# Query parameters whose values are credentials.
_SECRET_PARAMS = re.compile(r"(?i)([?&](?:token|ticket|access_token)=)[^&#\s]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """``text`` with every token value replaced by ``REDACTED``."""
    return _BEARER.sub(r"\1REDACTED", _SECRET_PARAMS.sub(r"\1REDACTED", text))


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_request(handler: Any) -> None:
    """Tornado ``log_function``: its default prints the full URI, token included."""
    status = handler.get_status()
    request = handler.request
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        redact(request.uri),
        request.remote_ip,
        1000.0 * request.request_time(),
    )
