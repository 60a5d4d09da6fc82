"""``GET /api/vms/{name}/metrics`` on any node: the owner's history, through the relay.

Only a VM's owner samples it, so only the owner holds its history. Another node asks it
with ``history`` (and ``since``, seconds) on the VM's ``:in``; the owner answers on the
asking node's reply channel with the rows in parts of at most 256 KiB (compact
JSON: the eight numbers of each sample), then a last answer with their count. The asking
node checks every row (at most ``MAX_ROWS``, finite numbers in range) and serves them in
the one-node shape. Refusals are the other cross-node reads': 404 for an unknown VM,
503 when its owner is gone or Redis is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from vmws.cluster import wire
from vmws.cluster.checks import MAX_TIME, number, raise_answer
from vmws.cluster.fleet import array_parts
from vmws.cluster.relay import Relay, RelayUnavailable
from vmws.config import Config
from vmws.errors import VMNotFound
from vmws.history import MetricsHistory, Row, sample_object
from vmws.hub import Hub
from vmws.rest import MetricsHistoryHandler
from vmws.tickets import Authenticator

if TYPE_CHECKING:
    from vmws.cluster.node import Cluster

__all__ = ["HistoryService", "ClusterMetricsHistoryHandler", "remote_history", "MAX_ROWS"]

log = logging.getLogger("vmws.cluster")

# More than a history holds at any metrics interval the flags allow (10 min at 0.1 s is
# 6,000 recent samples, plus 1,440 minutes): what is past it is not a history.
MAX_ROWS = 100_000
_TIMEOUT = 10.0


def _refusal(exc: Exception, code: str = "UNKNOWN_ERROR") -> dict[str, Any]:
    return {"ok": False, "kind": type(exc).__name__, "code": code, "message": str(exc)[:1000]}


class HistoryService:
    """The owner's side: answers ``history`` requests from its own history."""

    def __init__(
        self, relay: Relay, history: MetricsHistory, owned: Callable[[str], bool], now: Callable[[], float]
    ) -> None:
        self._relay, self._history, self._owned, self._now = relay, history, owned, now

    def on_history(self, vm: str, node: str, rid: str, header: dict[str, Any], data: bytes) -> None:
        try:
            seconds = number(header.get("since"))
        except ValueError as exc:
            log.warning("refused a malformed history request for %s from %s: %s", vm, node, exc)
            self._relay.reply(node, rid, _refusal(ValueError(f"the owner node refused 'since': {exc}")))
            return
        if not self._owned(vm):
            self._relay.reply(node, rid, _refusal(VMNotFound(f"no VM named {vm!r}"), "VM_NOT_FOUND"))
            return
        rows = self._history.since(vm, seconds, self._now())
        # Through the outbox, like every answer: the parts arrive in order, before the last one.
        for part in array_parts([t, cpu, *counters] for t, cpu, counters in rows):
            header = {"op": "reply", "id": rid, "more": True}
            self._relay.enqueue("publish", wire.reply_channel(node), wire.encode(header, part))
        self._relay.reply(node, rid, {"ok": True, "rows": len(rows)})


def _row(values: object) -> Row:
    if not isinstance(values, list) or len(values) != 8:
        raise ValueError("a sample is not 8 numbers")
    t = number(values[0], MAX_TIME)
    cpu = min(number(values[1]), 100.0)
    return t, cpu, tuple(int(number(v)) for v in values[2:])


async def remote_history(relay: Relay, vm: str, seconds: float) -> list[Row]:
    """``vm``'s samples of the last ``seconds``, from its owner node."""
    rows: list[Row] = []
    problems: list[str] = []

    def part(answer: dict[str, Any]) -> None:
        data = answer.get("data")
        if problems or not isinstance(data, bytes):
            return
        try:
            parsed = orjson.loads(data)
            if not isinstance(parsed, list) or len(rows) + len(parsed) > MAX_ROWS:
                raise ValueError(f"not a list of at most {MAX_ROWS} samples")
            rows.extend(_row(values) for values in parsed)
        except (orjson.JSONDecodeError, ValueError) as exc:
            problems.append(str(exc))

    answer = await relay.request(vm, {"op": "history", "since": seconds}, timeout=_TIMEOUT, on_message=part)
    raise_answer(answer)
    if problems or answer.get("rows") != len(rows):
        detail = problems[0] if problems else "some were lost on the way"
        log.warning("the history of %s from its owner node is not whole: %s", vm, detail)
        raise RelayUnavailable(f"the history of {vm!r} did not arrive whole from its owner node: try again")
    return rows


class ClusterMetricsHistoryHandler(MetricsHistoryHandler):
    """``GET /api/vms/{name}/metrics`` on a cluster node: another node's VM from its owner."""

    def initialize(  # type: ignore[override]
        self, hub: Hub, auth: Authenticator, config: Config, history: MetricsHistory, cluster: Cluster | None = None
    ) -> None:
        super().initialize(hub, auth, config, history)
        assert cluster is not None
        self.cluster = cluster

    async def samples(self, name: str, seconds: float, now: float) -> list[dict[str, Any]]:
        relayed, relay = self.cluster.relayed, self.cluster.relay
        if relayed is None or relay is None or name in relayed.local_names:
            return await super().samples(name, seconds, now)
        return [sample_object(row) for row in await remote_history(relay, name, seconds)]
