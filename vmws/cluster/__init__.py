"""vmws past one node: a cluster of nodes on Redis (``docs/cluster.md``)."""

from __future__ import annotations
