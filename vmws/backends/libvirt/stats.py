"""Reading one domain's statistics from libvirt, as the flat dict ``vmws.backends.libvirt.metrics`` eats.

``virConnectGetAllDomainStats`` gives everything in one call on QEMU. Drivers that
answer it only partly (libvirt's test driver returns just the state) are read through
the older per-call APIs, filled into the same keys. Blocking: run it off the loop.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt

__all__ = ["read_stats", "STATS_GROUPS"]

STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)


def _devices(dom: libvirt.virDomain) -> tuple[list[str], list[str]]:
    root = ET.fromstring(dom.XMLDesc(0))
    nics = [t.get("dev", "") for t in root.findall("./devices/interface/target")]
    disks = [t.get("dev", "") for t in root.findall("./devices/disk/target")]
    return [n for n in nics if n], [d for d in disks if d]


def _per_call(dom: libvirt.virDomain) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    try:
        stats["cpu.time"] = dom.getCPUStats(True)[0]["cpu_time"]
        stats["vcpu.current"] = dom.info()[3]
    except (libvirt.libvirtError, IndexError, KeyError):
        pass
    try:
        memory = dom.memoryStats()
        for key in ("actual", "available", "usable", "unused", "rss"):
            if key in memory:
                stats["balloon.current" if key == "actual" else f"balloon.{key}"] = memory[key]
    except libvirt.libvirtError:
        pass
    nics, disks = _devices(dom)
    stats["net.count"], stats["block.count"] = len(nics), len(disks)
    for i, dev in enumerate(nics):
        try:
            rx, _, _, _, tx, *_ = dom.interfaceStats(dev)
            stats[f"net.{i}.rx.bytes"], stats[f"net.{i}.tx.bytes"] = rx, tx
        except libvirt.libvirtError:
            pass
    for i, dev in enumerate(disks):
        try:
            _, rd, _, wr, _ = dom.blockStats(dev)
            stats[f"block.{i}.rd.bytes"], stats[f"block.{i}.wr.bytes"] = rd, wr
        except libvirt.libvirtError:
            pass
    return stats


def read_stats(dom: libvirt.virDomain) -> dict[str, Any]:
    """Every statistic ``vmws.backends.libvirt.metrics`` uses for ``dom`` (a running domain)."""
    stats: dict[str, Any] = {}
    try:
        records = dom.connect().domainListGetStats([dom], STATS_GROUPS, 0)
        if records:
            stats = dict(records[0][1])
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            raise
    if "cpu.time" not in stats:
        stats.update(_per_call(dom))
    return stats
