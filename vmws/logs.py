"""Logging set-up: text or JSON lines that never show a credential and cannot be forged.

Everything is done once, in a filter on the one handler, so no call site can forget:

- Credentials are redacted from the message, its arguments and exception text: query
  parameters named ``token``, ``ticket`` or ``access_token`` however they are spelt
  (``%74oken``, ``TOKEN`` — Tornado percent-decodes argument names), ``Bearer`` values,
  and anything shaped like a JWT or a ticket wherever it appears (Tornado's
  "Invalid unicode in token: b'…'" quotes the raw argument).
- Each argument is cut to ``MAX_ARG_CHARS`` (a 60 KB VM name must not cost 60 KB of log
  per request) and the whole message to ``MAX_MESSAGE_CHARS``.
- Every C0 and C1 control character, DEL, U+2028/U+2029 and lone surrogates are written
  as ``\\xNN``/``\\uNNNN`` (in both formats: JSON would escape C0 but pass C1 and DEL
  through raw, and its encoder refuses lone surrogates), so a record is one line and no
  escape sequence reaches whoever tails the log. A traceback keeps its lines; in text
  format each is indented, so only a record's first line starts at column 0.
- What other nodes send through Redis is logged when it is refused, and anyone who can
  publish there could repeat it: records of ``vmws.cluster`` are kept to
  ``REPEATS_PER_WINDOW`` per call site per ``REPEAT_WINDOW`` seconds; the first one after
  says how many like it were left out.
- The context fields a call site passes as ``extra=log_context(...)`` (``vm``, ``user``,
  ``session``, ``requestId``) go through the same redaction, cut and escaping as the
  arguments; the JSON format writes them as fields of their own (the text format's
  message already names them).
"""

from __future__ import annotations

import logging
import numbers
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

__all__ = [
    "configure_logging",
    "redact",
    "escape_controls",
    "log_request",
    "log_context",
    "MAX_ARG_CHARS",
    "MAX_MESSAGE_CHARS",
    "RepeatLimit",
]

log = logging.getLogger("vmws")
access_log = logging.getLogger("vmws.access")

MAX_ARG_CHARS = 300
MAX_MESSAGE_CHARS = 4096
REDACTED = "REDACTED"

# Records of one call site (logger and message template) let through per window, for the
# loggers that log what arrives from Redis.
REPEATS_PER_WINDOW = 5
REPEAT_WINDOW = 10.0
_REPEAT_LIMITED = ("vmws.cluster",)
_MAX_SITES = 1000

# Record attributes set through ``extra=log_context(...)``, in the order JSON writes them.
CONTEXT_FIELDS = ("vm", "user", "session", "requestId")

# Query parameters whose values are credentials, compared after percent-decoding and casefolding.
_SECRET_NAMES = frozenset({"token", "ticket", "access_token"})
# name=value pairs of a query string (or a form body) anywhere in the text.
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s?]*)=(?P<value>[^&;#\s]*)")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
# A JWT: base64url of a JSON object ('{' encodes as 'e' then one of w-z, 0-9, -, _),
# then payload and signature segments (the signature is empty with alg none).
_JWT = re.compile(r"e[wxyz0-9_-][A-Za-z0-9_-]{14,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_TICKET = re.compile(r"vmt_[A-Za-z0-9_-]+")
# C0, DEL, C1, the Unicode line/paragraph separators, lone surrogates.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _secret_name(raw: str) -> bool:
    name = unquote_to_bytes(raw.replace("+", " ")).decode("latin-1")
    return name.strip().casefold() in _SECRET_NAMES


def _redact_param(match: re.Match[str]) -> str:
    if not _secret_name(match["name"]):
        return match[0]
    return f"{match['lead']}{match['name']}={REDACTED}"


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``REDACTED``."""
    text = _PARAM.sub(_redact_param, text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _TICKET.sub("vmt_" + REDACTED, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` on one line with nothing a terminal would act on."""
    return _CONTROLS.sub(_escape_char, text)


def log_context(
    *,
    vm: str | None = None,
    user: str | None = None,
    session: str | None = None,
    request_id: str | None = None,
) -> dict[str, str]:
    """The ``extra=`` of a log call about one connection or command (unset fields left out)."""
    fields = {"vm": vm, "user": user, "session": session, "requestId": request_id}
    return {key: value for key, value in fields.items() if value is not None}


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} chars)"


class _SafeArg:
    """A log argument as ``%s`` and ``%r`` will show it: redacted and cut to size."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def __str__(self) -> str:
        return _truncate(redact(_text(self._value, str)), MAX_ARG_CHARS)

    def __repr__(self) -> str:
        return _truncate(redact(_text(self._value, repr)), MAX_ARG_CHARS)


def _text(value: object, how: Any) -> str:
    try:
        return str(how(value))
    except Exception:  # a hostile __str__ must not lose the record
        return f"<unprintable {type(value).__name__}>"


def _safe_args(args: Any) -> Any:
    # Numbers stay as they are, so %d and %.2f keep working; everything else is wrapped.
    if isinstance(args, Mapping):
        return {k: v if isinstance(v, numbers.Number) else _SafeArg(v) for k, v in args.items()}
    return tuple(a if isinstance(a, numbers.Number) else _SafeArg(a) for a in args)


class _SafeRecordFilter(logging.Filter):
    """Redacts, truncates and escapes each record in place."""

    def __init__(self, indent_blocks: bool) -> None:
        super().__init__()
        # Text format: traceback lines indented, so only a record's first line is at column 0.
        self._indent = "    " if indent_blocks else ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = _safe_args(record.args)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what was meant, safely
            message = f"{_text(record.msg, str)} {_text(record.args, repr)}"
        record.msg, record.args = escape_controls(_truncate(redact(message), MAX_MESSAGE_CHARS)), None
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:  # client strings, like the arguments: redacted, cut, escaped
                setattr(record, field, escape_controls(str(_SafeArg(value))))
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self._block(record.exc_text)
        if record.stack_info:
            record.stack_info = self._block(record.stack_info)
        return True

    def _block(self, text: str) -> str:
        """A multi-line text (a traceback): redacted, lines kept, each one escaped."""
        return "\n".join(self._indent + escape_controls(line) for line in redact(text).split("\n"))


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                entry[field] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry).decode()


class RepeatLimit(logging.Filter):
    """At most ``burst`` records per call site (logger, template) per ``window`` seconds,
    for the loggers named in ``names``; the first record let through after some were
    left out ends with how many. Call sites are the program's own templates: a bounded set."""

    def __init__(
        self,
        names: tuple[str, ...],
        burst: int = REPEATS_PER_WINDOW,
        window: float = REPEAT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.names = names
        self.burst = burst
        self.window = window
        self._clock = clock
        self._sites: dict[tuple[str, str], list[float]] = {}  # [window start, passed, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.names):
            return True
        now = self._clock()
        if len(self._sites) >= _MAX_SITES and (record.name, str(record.msg)) not in self._sites:
            self._sites.clear()  # only a message built before logging makes new sites without end
        site = self._sites.setdefault((record.name, str(record.msg)), [now, 0, 0])
        if now - site[0] >= self.window:
            left_out = int(site[2])
            site[:] = [now, 0, 0]
            if left_out:
                record.msg = f"{record.msg} ({left_out} like it left out in the last {self.window:g} s)"
        if site[1] >= self.burst:
            site[2] += 1
            return False
        site[1] += 1
        return True


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatLimit(_REPEAT_LIMITED))  # before the safe-record filter rewrites the message
    handler.addFilter(_SafeRecordFilter(indent_blocks=fmt != "json"))
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
