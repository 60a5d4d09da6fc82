"""What a cluster node adds to the fleet view, the history and metrics, together.

Started by the node once its relay runs (``Cluster.start``), stopped before it leaves:

- ``ClusterFleet``: the fleet shows every node's VMs (``vmws.cluster.fleet``);
- ``MetricsPublisher`` and ``SharedSamples``: a VM watched on other nodes is sampled
  once per metrics interval by its owner (``vmws.cluster.metrics``);
- ``HistoryService``: the owner answers other nodes' history requests (``vmws.cluster.history``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmws.cluster.fleet import ClusterFleet
from vmws.cluster.history import HistoryService
from vmws.cluster.metrics import MetricsPublisher, SharedSamples
from vmws.fleet import Fleet
from vmws.hub import Hub

if TYPE_CHECKING:
    from vmws.cluster.node import Cluster

__all__ = ["FleetServices"]


class FleetServices:
    def __init__(self, cluster: Cluster, hub: Hub, fleet: Fleet) -> None:
        owner, relay, relayed = cluster.owner, cluster.relay, cluster.relayed
        assert owner is not None and relay is not None and relayed is not None and cluster.membership is not None
        owned = owner.vms.__contains__
        interval = cluster.config.metrics_interval
        self.publisher = MetricsPublisher(
            relay, cluster.backend, hub, owned, fleet.record, interval, hub.oversight.telemetry.registry
        )
        fleet.also_watched(self.publisher.publishing)
        relayed.shared_samples = SharedSamples(relay, interval)
        history = HistoryService(relay, fleet.history, owned, hub.now)
        owner.services.update(
            {"watch": self.publisher.on_watch, "sample": self.publisher.on_sample, "history": history.on_history}
        )
        self.fleet = ClusterFleet(fleet, relay, cluster.backend, cluster.name, cluster.membership.incarnation, owned)

    async def start(self) -> None:
        await self.fleet.start()

    async def stop(self) -> None:
        await self.fleet.stop()
        await self.publisher.close()
