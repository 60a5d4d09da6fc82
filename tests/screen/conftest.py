"""The cluster's real Redis and ``vmws serve`` nodes, for the screen's cluster test."""

from tests.cluster.conftest import redis_server, start_nodes

__all__ = ["redis_server", "start_nodes"]
