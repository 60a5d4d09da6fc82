"""The audit trail: who did what, as one structured event per thing worth answering for.

Kinds (``docs/operations.md`` lists every field): ``command``, ``console_session`` and
``screen_session`` (``state`` ``opened`` then ``closed``, with the bytes each way; a
forwarded screen on the node the client reached), ``auth_refused``,
``ticket_issued`` and ``revocation``. Every event has ``time`` (RFC 3339), ``kind`` and
``node``.

Events go to an in-memory ring (the newest ``ring_size``), which serves ``GET
/api/audit``, and, with ``--audit-log FILE``, to that file as JSON lines: appended,
flushed and fsync'd in batches (at most ``FLUSH_DELAY`` seconds after an event, and at
close), reopened by ``reopen()`` (SIGHUP) so logrotate can move the file away.

Every string in an event may come from a client or a guest: each is redacted (no
credential shape survives, see ``vmws.logs.redact``), stripped of what is not valid
Unicode and cut to ``MAX_FIELD_CHARS``; orjson escapes the rest. No token is ever
passed in: callers hand over the principal's ``sub``, never the credential.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

import orjson

from vmws.logs import redact
from vmws.protocol import iso_timestamp

__all__ = ["AuditLog", "select", "parse_rfc3339", "DEFAULT_RING_SIZE", "MAX_FIELD_CHARS", "FLUSH_DELAY"]

log = logging.getLogger("vmws.audit")

DEFAULT_RING_SIZE = 10_000
# A string field longer than this is cut (a 60 KB VM name must not cost 60 KB per event).
MAX_FIELD_CHARS = 256
# Seconds between an event and the fsync that makes it durable (one fsync per batch).
FLUSH_DELAY = 1.0


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates → '?'
        return redact(text[:MAX_FIELD_CHARS])
    return value


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp with a zone (``Z`` or ``±HH:MM``)."""
    try:
        moment = _dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp (e.g. 2026-01-31T12:00:00Z): {text[:64]!r}") from None
    if moment.tzinfo is None:
        raise ValueError("an RFC 3339 timestamp needs a zone: Z or ±HH:MM")
    return moment.timestamp()


class AuditLog:
    def __init__(
        self,
        path: str | None = None,
        *,
        ring_size: int = DEFAULT_RING_SIZE,
        node: str = "",
        now: Callable[[], float],
    ) -> None:
        self.path = path
        self.node = node
        self._now = now
        self._ring: deque[tuple[float, dict[str, Any]]] = deque(maxlen=ring_size)
        self._file: IO[bytes] | None = None
        self._flush: asyncio.TimerHandle | None = None
        # In a cluster: hands each event to the shared stream (``vmws/cluster/audit.py``).
        self.on_record: Callable[[float, dict[str, Any]], None] | None = None
        if path is not None:
            self._file = self._open(path)

    @staticmethod
    def _open(path: str) -> IO[bytes]:
        try:
            # Created 0640: who did what, from which address, is not for every local user.
            return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640), "ab")
        except OSError as exc:
            raise ValueError(f"cannot open the audit log {path}: {exc.strerror}") from None

    # Writing

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Add one event (``None`` fields left out) and return it as stored."""
        at = self._now()
        event: dict[str, Any] = {"time": iso_timestamp(at), "kind": kind, "node": _clean(self.node)}
        for key, value in fields.items():
            if value is not None:
                event[key] = _clean(value)
        self._ring.append((at, event))
        if self.on_record is not None:
            self.on_record(at, event)
        if self._file is not None:
            try:
                self._file.write(orjson.dumps(event) + b"\n")
            except OSError as exc:  # a full disk must not take the gateway down
                log.error("audit log %s: write failed: %s", self.path, exc.strerror)
            self._schedule_flush()
        return event

    def _schedule_flush(self) -> None:
        if self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the server's loop (a unit test): at once
            self.flush()
            return
        self._flush = loop.call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Write out and fsync what is buffered: one fsync for every event since the last."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._file is None:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            log.error("audit log %s: flush failed: %s", self.path, exc.strerror)

    def reopen(self) -> None:
        """Close the file and open ``path`` again (SIGHUP, after logrotate moved it)."""
        if self.path is None:
            return
        self.flush()
        old = self._file
        try:
            self._file = self._open(self.path)
        except ValueError as exc:  # keep writing to the old one rather than lose events
            log.error("%s; still writing to the previous file", exc)
            return
        if old is not None:
            old.close()
        log.info("audit log reopened: %s", self.path)

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    # Reading

    def query(
        self,
        *,
        vm: str | None = None,
        user: str | None = None,
        since: float | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events matching every filter given, oldest first."""
        return select(reversed(self._ring), vm=vm, user=user, since=since, limit=limit)

    def events(self) -> Iterable[dict[str, Any]]:
        return (event for _, event in self._ring)


def select(
    newest_first: Iterable[tuple[float, dict[str, Any]]],
    *,
    vm: str | None,
    user: str | None,
    since: float | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The first ``limit`` of ``(time, event)`` pairs (newest first) matching every filter given,
    returned oldest first."""
    found: list[dict[str, Any]] = []
    for at, event in newest_first:
        if since is not None and at < since:
            break  # newest first: everything after is older still
        if vm is not None and event.get("vm") != vm:
            continue
        if user is not None and event.get("user") != user:
            continue
        found.append(event)
        if len(found) >= limit:
            break
    found.reverse()
    return found
