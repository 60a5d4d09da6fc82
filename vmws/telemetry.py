"""The gateway's own metrics, in Prometheus' text format (``GET /metrics``).

Each server has its own ``CollectorRegistry`` (never the process-global one), so two
servers in one process (the tests) count apart. Counters move where things happen
(one call from the handler or hub); what is a state rather than an event — open
sockets, console viewers, VMs by status, console bytes read from guests — is read at
scrape time from the hub, so the hot paths carry no bookkeeping for it.

Label values are always from small fixed sets (message types, endpoints, actions,
outcomes, reasons): never a VM name, user or anything else a client chooses.
"""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vmws.backend import VMStatus
from vmws.codes import CloseCode

__all__ = ["Telemetry", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Server messages start '{"type":"KIND"' (protocol.py builds them with orjson, type first).
_TYPE_PREFIX = '{"type":"'
# The 4 characters after '{"type":"' → the server message type they start.
_SENT_TYPES = {
    kind[:4]: kind for kind in ("connection", "status", "metrics", "response", "error", "heartbeat", "console")
}
_TYPE_AT = slice(len(_TYPE_PREFIX), len(_TYPE_PREFIX) + 4)
# vmws.protocol's client message classes → their wire type.
_CLIENT_TYPES = {"Command": "command", "ConsoleInput": "console_input", "Heartbeat": "heartbeat"}
# Command latencies, seconds: from a few ms (simulator) to the 300 s command timeout.
_LATENCY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _Traffic(Collector):
    """Messages and bytes each way: plain integers bumped on every frame, turned into
    counters at scrape time. A prometheus_client counter costs ~2 µs an increment (its
    lock), and the type of an outgoing message is read at scrape time too: a sent
    message is counted under the 4 characters that start its type, one slice and one
    dict lookup on the path every console byte takes."""

    def __init__(self) -> None:
        self.sent: dict[str, list[int]] = {}  # type prefix → [messages, bytes]
        self.received: dict[str, list[int]] = {}  # type → [messages, bytes]
        self.typed = 0

    def _by_type(self) -> dict[tuple[str, str], list[int]]:
        found: dict[tuple[str, str], list[int]] = {}
        for direction, table, name in (("out", self.sent, _SENT_TYPES.get), ("in", self.received, None)):
            for key, (count, size) in list(table.items()):
                kind = (name(key, "other") if name else key) or "other"
                totals = found.setdefault((direction, kind), [0, 0])
                totals[0] += count
                totals[1] += size
        return found

    def collect(self) -> Iterator[CounterMetricFamily]:
        by_type = self._by_type()
        messages = CounterMetricFamily(
            "vmws_messages", "WebSocket messages by direction and type", labels=["direction", "type"]
        )
        sizes = CounterMetricFamily(
            "vmws_message_bytes",
            "WebSocket message bytes by direction and type (out: on the wire, frame included; in: payload)",
            labels=["direction", "type"],
        )
        for labels, (count, size) in sorted(by_type.items()):
            messages.add_metric(list(labels), count)
            sizes.add_metric(list(labels), size)
        yield messages
        yield sizes
        console = CounterMetricFamily(
            "vmws_console_bytes",
            "Console bytes: typed by viewers (in, UTF-8), console messages written to viewers (out, on the wire)",
            labels=["direction"],
        )
        console.add_metric(["in"], self.typed)
        console.add_metric(["out"], by_type.get(("out", "console"), [0, 0])[1])
        yield console


class _HubState(Collector):
    """What the hub holds right now, read at scrape time."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self.vm_statuses: _Tally[str] = _Tally()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sockets = GaugeMetricFamily("vmws_open_sockets", "Open WebSocket connections by endpoint", labels=["endpoint"])
        counts: _Tally[str] = _Tally()
        for peer in list(self._hub.peers):
            endpoint = getattr(peer, "endpoint", None)
            counts[str(getattr(endpoint, "value", endpoint or "other"))] += 1
        for endpoint, count in sorted(counts.items()):
            sockets.add_metric([endpoint], count)
        yield sockets
        statuses = GaugeMetricFamily("vmws_vms", "VMs by status (as of this scrape)", labels=["status"])
        for status in VMStatus:
            statuses.add_metric([status.value], self.vm_statuses.get(status.value, 0))
        yield statuses
        console_read = GaugeMetricFamily(
            "vmws_console_read_bytes",
            "Console output bytes read from guests since start (all VMs)",
        )
        console_read.add_metric([], sum(s.end for s in self._scrollbacks()))
        yield console_read

    def _scrollbacks(self) -> Iterable[Any]:
        return list(getattr(self._hub, "_scrollbacks", {}).values())


class _Cluster(Collector):
    """A cluster node's share: the VMs it owns, and the messages it published to and
    received from Redis, by kind (one dict increment per message on the relay's path)."""

    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], int] = {}
        self.owned: Callable[[], int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        owned = GaugeMetricFamily("vmws_cluster_owned_vms", "VMs this node owns in the cluster")
        owned.add_metric([], self.owned() if self.owned is not None else 0)
        yield owned
        messages = CounterMetricFamily(
            "vmws_cluster_messages",
            "Messages between nodes through Redis pub/sub, by direction (sent, received) and kind "
            "(request: to a VM's owner; output: from an owner; reply; fleet; other)",
            labels=["direction", "kind"],
        )
        for (direction, kind), count in sorted(list(self.messages.items())):
            messages.add_metric([direction, kind], count)
        yield messages


class Telemetry:
    def __init__(self, hub: Any | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._traffic = _Traffic()
        r.register(self._traffic)
        self.commands = Counter("vmws_commands", "Commands by action and outcome", ["action", "outcome"], registry=r)
        self.command_seconds = Histogram(
            "vmws_command_duration_seconds",
            "Command latency by action",
            ["action"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_refused = Counter("vmws_auth_refused", "Refused authentications by reason", ["reason"], registry=r)
        self.heartbeat_reaps = Counter("vmws_heartbeat_reaps", "Connections closed for silence (4010)", registry=r)
        self.slow_cutoffs = Counter("vmws_slow_client_cutoffs", "Connections cut off as too slow (4008)", registry=r)
        self.tickets = Counter("vmws_tickets_issued", "Tickets issued by POST /api/tickets", registry=r)
        self.revocations = Counter("vmws_revocations", "Revocations added", registry=r)
        # Fed by the cluster code (docs/cluster.md, ``watch_cluster``): 0 on a node alone.
        self._cluster = _Cluster()
        r.register(self._cluster)
        self._state: _HubState | None = None
        if hub is not None:
            self._state = _HubState(hub)
            r.register(self._state)

    def watch_cluster(self, messages: dict[tuple[str, str], int], owned: Callable[[], int]) -> None:
        """Report the cluster's traffic through Redis (``(direction, kind)`` → messages, a
        dict the relay bumps) and the number of VMs this node owns, read at scrape time."""
        self._cluster.messages = messages
        self._cluster.owned = owned

    # Events

    def sent(self, text: str, size: int) -> None:
        """A message of ``size`` bytes (framed) written to a socket."""
        prefix = text[_TYPE_AT]
        counts = self._traffic.sent.get(prefix)
        if counts is None:
            counts = self._traffic.sent.setdefault(prefix if prefix in _SENT_TYPES else "", [0, 0])
        counts[0] += 1
        counts[1] += size

    def received(self, parsed: object | None, size: int) -> None:
        """A client message of ``size`` bytes, as ``vmws.protocol`` parsed it (None: invalid)."""
        kind = _CLIENT_TYPES.get(type(parsed).__name__, "other")
        counts = self._traffic.received.setdefault(kind, [0, 0])
        counts[0] += 1
        counts[1] += size

    def typed(self, size: int) -> None:
        self._traffic.typed += size

    def closed_by_server(self, code: int | None) -> None:
        if code == CloseCode.HEARTBEAT_TIMEOUT:
            self.heartbeat_reaps.inc()
        elif code == CloseCode.TOO_SLOW:
            self.slow_cutoffs.inc()

    def command(self, action: str, outcome: str, seconds: float) -> None:
        self.commands.labels(action, outcome).inc()
        self.command_seconds.labels(action).observe(seconds)

    # Scraping

    def scrape(self, vm_statuses: Iterable[str] = ()) -> bytes:
        """The text exposition; ``vm_statuses`` is the status of every VM, as of now."""
        if self._state is not None:
            self._state.vm_statuses = _Tally(vm_statuses)
        return generate_latest(self.registry)
