"""``GET /api/vms`` on a cluster node: this node's VMs and every record in Redis.

A VM whose owner's liveness key is gone (or names another incarnation) is listed with
``status: error`` and ``node: null`` until an owner serves it again. Names and fields
read from Redis are checked (a record that is not one is left out). While Redis is
down the listing holds this node's VMs only.
"""

from __future__ import annotations

import logging
from typing import Any

from vmws.backend import VMInfo
from vmws.cluster import wire
from vmws.cluster.backend import live_incarnation, parse_record
from vmws.cluster.membership import node_key

__all__ = ["cluster_vms"]

log = logging.getLogger("vmws.cluster")
_MAX_NAME_BYTES = 255


async def cluster_vms(redis: Any, me: str, local: list[VMInfo]) -> list[dict[str, Any]]:
    listing: dict[str, dict[str, str | None]] = {
        vm.name: {"name": vm.name, "status": vm.status.value, "node": me} for vm in local
    }
    try:
        raw_names = await redis.smembers(wire.VMS_KEY)
        names = sorted(
            {n.decode("utf-8") for n in raw_names if isinstance(n, bytes) and len(n) <= _MAX_NAME_BYTES and _decodes(n)}
            - set(listing)
        )
        pipe = redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(wire.vm_key(name))
        records = await pipe.execute() if names else []
        parsed = {}
        for name, raw in zip(names, records, strict=True):
            try:
                parsed[name] = parse_record(name, raw)
            except (ValueError, TypeError):
                continue
        owners = sorted({owner for _, (owner, _) in parsed.values()})
        lives = dict(zip(owners, await redis.mget([node_key(o) for o in owners]), strict=True)) if owners else {}
    except Exception as exc:  # Redis down: this node's VMs only
        log.debug("cluster VM listing without Redis: %s", exc)
        return sorted(listing.values(), key=lambda vm: vm["name"])
    for name, (info, (owner, incarnation)) in parsed.items():
        if live_incarnation(lives.get(owner), incarnation):
            listing[name] = {"name": name, "status": info.status.value, "node": owner}
        else:
            listing[name] = {"name": name, "status": "error", "node": None}
    return sorted(listing.values(), key=lambda vm: vm["name"])


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
