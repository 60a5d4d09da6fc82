"""Operators' HTTP endpoints: ``GET /api/audit``, ``GET``/``POST /api/revocations``, ``GET /metrics``.

Each needs its own permission (``audit``, ``admin``, ``metrics``), answers JSON errors
like the rest of ``/api`` (``vmws/rest.py``), and ``/metrics`` also runs without a token
on the separate ``--metrics-listen`` address (``OpenMetricsHandler``).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import tornado.web
from redis.exceptions import RedisError

from vmws.audit import parse_rfc3339
from vmws.auth import Permission, Principal
from vmws.errors import AuthError, InvalidCommand, VMWSError
from vmws.http_request import credential, log_exception_redacted, query_argument
from vmws.hub import Hub
from vmws.protocol import iso_timestamp
from vmws.rest import _APIHandler
from vmws.telemetry import CONTENT_TYPE
from vmws.tickets import ClusterUnavailable

__all__ = ["AuditHandler", "RevocationHandler", "MetricsHandler", "OpenMetricsHandler", "MAX_REVOCATION_BODY"]

# A revocation is a few short fields; anything longer is refused unread.
MAX_REVOCATION_BODY = 4096
DEFAULT_AUDIT_LIMIT = 1000


class _OperatorHandler(_APIHandler):
    permission: Permission

    async def _principal(self) -> Principal | None:
        """The caller's principal with ``permission``, or None once an error is written."""
        try:
            principal = await self.auth.authenticate(credential(self.request))
            principal.require(self.permission)
        except AuthError as exc:
            self._refuse(exc)
            return None
        return principal


class AuditHandler(_OperatorHandler):
    """``GET /api/audit?vm=&user=&since=&limit=``: recent audit events, oldest first (needs ``audit``)."""

    permission = Permission.AUDIT

    async def get(self) -> None:
        if await self._principal() is None:
            return
        try:
            since_text = query_argument(self.request, "since")
            since = parse_rfc3339(since_text) if since_text else None
            limit = _limit(query_argument(self.request, "limit"), self.config.audit_ring_size)
        except ValueError as exc:
            self._error(400, InvalidCommand(str(exc)))
            return
        vm = query_argument(self.request, "vm", strip=False)
        user = query_argument(self.request, "user", strip=False)
        shared = self.hub.oversight.shared_audit
        if shared is None:
            events = self.hub.oversight.audit.query(vm=vm, user=user, since=since, limit=limit)
        else:  # a cluster: the events of every node
            try:
                events = await shared.query(vm=vm, user=user, since=since, limit=limit)
            except (RedisError, OSError):
                self._error(
                    503,
                    ClusterUnavailable(
                        "the cluster's Redis is unreachable: the audit events of every node cannot be read; retry"
                    ),
                )
                return
        self.write(orjson.dumps({"events": events}))


def _limit(text: str | None, most: int) -> int:
    if text is None or text == "":
        return min(DEFAULT_AUDIT_LIMIT, most)
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not 1 <= int(text) <= most:
        raise ValueError(f"'limit' must be a whole number from 1 to {most}")
    return int(text)


class RevocationHandler(_OperatorHandler):
    """``POST /api/revocations`` ``{"sub"|"jti", "expiresAt"|"expiresIn"}``; ``GET`` lists those in force
    (needs ``admin``)."""

    permission = Permission.ADMIN

    async def get(self) -> None:
        if await self._principal() is None:
            return
        self.write(
            orjson.dumps({"revocations": [_entry(r.sub, r.jti, r.expires_at) for r in self.auth.revocations.active()]})
        )

    async def post(self) -> None:
        principal = await self._principal()
        if principal is None:
            return
        try:
            sub, jti, expires_at = self._read_body()
            entry = self.auth.revocations.add(sub=sub, jti=jti, expires_at=expires_at)
        except ValueError as exc:
            self._error(400, InvalidCommand(f"invalid revocation: {exc}"))
            return
        closed = self.hub.oversight.revoked(entry, principal.sub, self.request.remote_ip)
        if self.auth.revocations.share is not None:
            try:
                await self.auth.revocations.share(entry, principal.sub)
            except (RedisError, OSError):
                self._error(
                    503,
                    ClusterUnavailable(
                        "revoked on this node only: the cluster's Redis is unreachable; retry to reach every node"
                    ),
                )
                return
        self.set_status(201)
        self.write(
            orjson.dumps({"revocation": _entry(entry.sub, entry.jti, entry.expires_at), "sessionsClosed": closed})
        )

    def _read_body(self) -> tuple[str | None, str | None, float]:
        if len(self.request.body) > MAX_REVOCATION_BODY:
            raise ValueError(f"the body is over {MAX_REVOCATION_BODY} bytes")
        try:
            body = orjson.loads(self.request.body)
        except orjson.JSONDecodeError:
            raise ValueError("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        unknown = sorted(set(body) - {"sub", "jti", "expiresAt", "expiresIn"})
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(repr(k)[:40] for k in unknown[:5])}")
        sub, jti = body.get("sub"), body.get("jti")
        for name, value in (("sub", sub), ("jti", jti)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"'{name}' must be a string")
        if ("expiresAt" in body) == ("expiresIn" in body):
            raise ValueError("give exactly one of 'expiresAt' (RFC 3339) and 'expiresIn' (seconds)")
        if "expiresAt" in body:
            if not isinstance(body["expiresAt"], str):
                raise ValueError("'expiresAt' must be an RFC 3339 timestamp string")
            return sub, jti, parse_rfc3339(body["expiresAt"])
        seconds = body["expiresIn"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise ValueError("'expiresIn' must be a number of seconds")
        return sub, jti, self.hub.now() + float(seconds)


def _entry(sub: str | None, jti: str | None, expires_at: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"sub": sub} if sub is not None else {"jti": jti}
    entry["expiresAt"] = iso_timestamp(expires_at)
    return entry


async def _scrape(hub: Hub) -> bytes:
    try:
        statuses = [vm.status.value for vm in await hub.backend.list()]
    except VMWSError:
        statuses = []  # the backend is away: VMs by status reads zero, the rest still counts
    return hub.oversight.telemetry.scrape(statuses)


class MetricsHandler(_OperatorHandler):
    """``GET /metrics`` in Prometheus' text format (needs ``metrics``)."""

    permission = Permission.METRICS

    async def get(self) -> None:
        if await self._principal() is None:
            return
        self.set_header("Content-Type", CONTENT_TYPE)
        self.write(await _scrape(self.hub))


class OpenMetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics`` without a token, on ``--metrics-listen`` only."""

    def initialize(self, hub: Hub) -> None:
        self.hub = hub

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_exception_redacted(self, typ, value, tb)

    async def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.write(await _scrape(self.hub))
