"""Metrics of a VM watched on other nodes: the owner samples it once per interval.

However many nodes watch one VM, its owner takes one sample per ``--metrics-interval``
and publishes it once on the VM's ``:out``; every node that follows the VM keeps the
latest one and its hub's sampler (one per watched VM, as on one node) hands it to the
watchers on its own timing, so the ``metrics`` message every interval stays true.

- A node with watchers of another node's VM asks for the samples with ``watch`` on the
  VM's ``:in`` — a lease of ``WATCH_TTL`` seconds that its sampler renews (every
  ``WATCH_RENEW`` seconds) while it asks for samples. When the last lease lapses the owner
  stops (at most ``WATCH_TTL`` later).
- The owner's sample is the one its own watchers get when it has any (their sampler
  runs anyway), else its publisher takes one; either way it goes into the owner's
  history at the metrics interval.
- A one-off ``sample`` request (a watcher's first ``metrics``, before any publication
  arrived) is answered from the last publication when it is fresh.

``vmws_cluster_samples_total`` counts the samples an owner takes for other nodes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from vmws.backend import Backend, MetricsSample
from vmws.cluster import wire
from vmws.cluster.checks import number
from vmws.cluster.relay import Relay
from vmws.errors import VMWSError
from vmws.hub import Hub

__all__ = ["SharedSamples", "MetricsPublisher", "parse_sample", "sample_values", "WATCH_TTL", "WATCH_RENEW"]

log = logging.getLogger("vmws.cluster")

WATCH_TTL = 10.0
WATCH_RENEW = 3.0


def sample_values(s: MetricsSample) -> list[float | int]:
    return [
        s.timestamp,
        s.cpu_utilization,
        s.memory_used,
        s.memory_total,
        s.net_rx_bytes,
        s.net_tx_bytes,
        s.disk_read_bytes,
        s.disk_write_bytes,
    ]


def parse_sample(values: object) -> MetricsSample:
    """A sample as ``sample_values`` wrote it, from another node (ValueError if it is not one)."""
    if not isinstance(values, list) or len(values) != 8:
        raise ValueError("not 8 values")
    t, cpu, *counters = (number(v) for v in values)
    return MetricsSample(t, min(cpu, 100.0), *(int(c) for c in counters))


def _fresh_for(interval: float) -> float:
    # A publication is due every interval; two (and some) cover one lost on the way or
    # a publisher whose interval differs a little from this node's.
    return 2 * interval + 0.5


class SharedSamples:
    """A non-owner node's side: the latest published sample of each VM it follows."""

    def __init__(self, relay: Relay, interval: float) -> None:
        self._relay = relay
        self._fresh = _fresh_for(interval)
        self._latest: dict[str, tuple[float, MetricsSample]] = {}
        self._leased: dict[str, float] = {}  # when this node last sent ``watch`` for a VM

    def want(self, vm: str) -> MetricsSample | None:
        """This node's sampler wants ``vm``'s metrics: renew the lease; the latest
        published sample if it is fresh (None: ask the owner for one)."""
        now = asyncio.get_running_loop().time()
        if now - self._leased.get(vm, float("-inf")) >= WATCH_RENEW:
            self._leased[vm] = now
            self._relay.enqueue("publish", wire.in_channel(vm), wire.encode({"op": "watch", "node": self._relay.node}))
        latest = self._latest.get(vm)
        return latest[1] if latest is not None and now - latest[0] <= self._fresh else None

    def feed(self, vm: str, header: dict[str, Any]) -> None:
        """A ``metrics`` message on ``vm``'s ``:out``."""
        try:
            sample = parse_sample(header.get("sample"))
        except ValueError as exc:
            log.warning("dropped metrics of %s from its owner node: %s", vm, exc)
            return
        self._latest[vm] = (asyncio.get_running_loop().time(), sample)

    def forget(self, vm: str) -> None:
        self._latest.pop(vm, None)
        self._leased.pop(vm, None)


class MetricsPublisher:
    """The owner's side: one sample and one publication per interval per VM watched elsewhere."""

    def __init__(
        self,
        relay: Relay,
        backend: Backend,
        hub: Hub,
        owned: Callable[[str], bool],
        record: Callable[[str, MetricsSample], None],
        interval: float,
        registry: CollectorRegistry,
    ) -> None:
        self._relay, self._backend, self._hub = relay, backend, hub
        self._owned = owned
        self._record = record  # into this node's history
        self._interval = interval
        self._fresh = _fresh_for(interval) - interval  # a sample asked for is at most ~1 interval old
        self._leases: dict[str, dict[str, float]] = {}  # VM -> node -> lease expiry (loop time)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._published: dict[str, tuple[float, MetricsSample]] = {}
        self.samples = Counter(
            "vmws_cluster_samples",
            "Metrics samples this node took of its VMs for other nodes' watchers",
            registry=registry,
        )
        hub.sample_listeners.append(self._on_hub_sample)

    def publishing(self, vm: str) -> bool:
        """Whether ``vm`` is sampled at the metrics interval for other nodes."""
        return vm in self._tasks

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Requests on a VM's ``:in`` (Owner.services)

    def on_watch(self, vm: str, node: str, rid: str, header: dict[str, Any], data: bytes) -> None:
        if not self._owned(vm):
            return
        loop = asyncio.get_running_loop()
        self._leases.setdefault(vm, {})[node] = loop.time() + WATCH_TTL
        if vm not in self._tasks:
            self._tasks[vm] = loop.create_task(self._publishing(vm), name=f"publish-metrics:{vm}")

    def on_sample(self, vm: str, node: str, rid: str, header: dict[str, Any], data: bytes) -> None:
        self._hub.spawn(self._answer_sample(vm, node, rid))

    async def _answer_sample(self, vm: str, node: str, rid: str) -> None:
        published = self._published.get(vm)
        try:
            if published is not None and asyncio.get_running_loop().time() - published[0] <= self._fresh:
                sample = published[1]
            else:
                sample = await self._take(vm)
        except VMWSError as exc:
            self._relay.reply(
                node, rid, {"ok": False, "kind": type(exc).__name__, "code": exc.code, "message": exc.message}
            )
            return
        self._relay.reply(node, rid, {"ok": True, "sample": sample_values(sample)})

    # Publishing

    async def _take(self, vm: str) -> MetricsSample:
        sample = await self._backend.sample(vm)
        self.samples.inc()
        return sample

    def _on_hub_sample(self, vm: str, sample: MetricsSample) -> None:
        """This node's watchers' sampler took ``vm``'s sample: other nodes get it too."""
        if vm in self._tasks:
            self._publish(vm, sample)

    def _publish(self, vm: str, sample: MetricsSample) -> None:
        self._published[vm] = (asyncio.get_running_loop().time(), sample)
        self._relay.enqueue(
            "publish", wire.out_channel(vm), wire.encode({"op": "metrics", "sample": sample_values(sample)})
        )

    async def _publishing(self, vm: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                leases = self._leases.get(vm, {})
                now = loop.time()
                for node in [n for n, expiry in leases.items() if expiry <= now]:
                    del leases[node]
                if not leases or not self._owned(vm):
                    return
                if not self._hub.is_watched(vm):  # else its sampler publishes (_on_hub_sample)
                    try:
                        sample = await self._take(vm)
                    except VMWSError as exc:
                        log.debug("metrics of %s for other nodes unavailable: %s", vm, exc.message)
                    else:
                        self._record(vm, sample)
                        self._publish(vm, sample)
                await asyncio.sleep(self._interval)
        finally:
            self._tasks.pop(vm, None)
            self._leases.pop(vm, None)
            self._published.pop(vm, None)
