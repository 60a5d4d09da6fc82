"""``MultiHostBackend``: the VMs of several libvirt connections (hypervisor hosts) as one.

Each ``--libvirt-uri`` is a ``LibvirtBackend`` of its own (its connection, events,
consoles); this routes each call by VM name to the host that has it. Names must be
unique across hosts: a name found on two hosts is served from neither (it is left out
of the listing, its status events are dropped, every call about it answers
``VM_NOT_FOUND`` (close 4004) with a message naming both hosts) and reported, with both
hosts, in the log (once per change) and through ``conflicts()`` (``/api/cluster``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from vmws.backend import Action, Backend, ConsoleStream, MetricsSample, StatusListener, VMInfo
from vmws.backends.libvirt.backend import LibvirtBackend
from vmws.errors import BackendUnavailable, VMNotFound

__all__ = ["MultiHostBackend"]

log = logging.getLogger(__name__)


class MultiHostBackend(Backend):
    def __init__(self, hosts: list[LibvirtBackend]) -> None:
        self.hosts = hosts
        self.capabilities = frozenset().union(*(h.capabilities for h in hosts))
        self._reported: dict[str, tuple[str, ...]] = {}  # conflicts as last logged

    @property
    def uri(self) -> str:
        return ",".join(h.uri for h in self.hosts)

    async def start(self) -> None:
        await asyncio.gather(*(h.start() for h in self.hosts))
        ids = [h.host_id for h in self.hosts]
        for host in self.hosts:
            if ids.count(host.host_id) > 1:
                others = [h.uri for h in self.hosts if h.host_id == host.host_id and h is not host]
                raise ValueError(
                    f"--libvirt-uri {host.uri} reaches the same host ({host.host_id}) as {', '.join(others)}: "
                    "give each hypervisor host once"
                )
        self._check_conflicts()

    async def close(self) -> None:
        await asyncio.gather(*(h.close() for h in self.hosts), return_exceptions=True)

    # Which host has a VM

    def conflicts(self) -> list[dict[str, Any]]:
        """VM names found on more than one host, each with those hosts."""
        found: dict[str, list[LibvirtBackend]] = {}
        for host in self.hosts:
            for name in host.names():
                found.setdefault(name, []).append(host)
        return [
            {"name": name, "hosts": [{"id": h.host_id, "uri": h.uri} for h in holders]}
            for name, holders in sorted(found.items())
            if len(holders) > 1
        ]

    def _check_conflicts(self) -> set[str]:
        """The conflicting names now; a change is logged once."""
        now = {c["name"]: tuple(h["id"] for h in c["hosts"]) for c in self.conflicts()}
        if now != self._reported:
            for name, hosts in now.items():
                if self._reported.get(name) != hosts:
                    log.warning(
                        "VM name %r is on several hypervisor hosts (%s): served from none until it is unique",
                        name,
                        ", ".join(hosts),
                    )
            for name in set(self._reported) - set(now):
                log.info("VM name %r is unique again: served", name)
            self._reported = now
        return set(now)

    async def _host(self, name: str) -> LibvirtBackend:
        holders = [h for h in self.hosts if h.knows(name)]
        if not holders:
            # Not seen yet (defined since the last event): ask every host.
            for host in self.hosts:
                try:
                    await host.get(name)
                except (VMNotFound, BackendUnavailable):
                    continue
                holders.append(host)
        if not holders:
            raise VMNotFound(f"VM {name!r} not found")
        if len(holders) > 1:
            self._check_conflicts()
            hosts = ", ".join(h.host_id for h in holders)
            raise VMNotFound(f"VM {name!r} is on several hypervisor hosts ({hosts}): served from none")
        return holders[0]

    def host_of(self, name: str) -> str | None:
        holders = [h.host_id for h in self.hosts if h.knows(name)]
        return holders[0] if len(holders) == 1 else None

    def knows(self, name: str) -> bool:
        return self.host_of(name) is not None

    def names(self) -> set[str]:
        conflicting = self._check_conflicts()
        return {n for h in self.hosts for n in h.names()} - conflicting

    # Backend interface

    async def list(self) -> list[VMInfo]:
        conflicting = self._check_conflicts()
        infos = [info for host in self.hosts for info in await host.list() if info.name not in conflicting]
        return sorted(infos, key=lambda info: info.name)

    async def get(self, name: str) -> VMInfo:
        return await (await self._host(name)).get(name)

    async def sample(self, name: str) -> MetricsSample:
        return await (await self._host(name)).sample(name)

    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        return await (await self._host(name)).perform(name, action, force=force)

    async def open_console(self, name: str) -> ConsoleStream:
        return await (await self._host(name)).open_console(name)

    async def open_screen(self, name: str) -> socket.socket:
        return await (await self._host(name)).open_screen(name)

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        def unique(info: VMInfo) -> None:
            if sum(h.knows(info.name) for h in self.hosts) == 1:
                listener(info)

        unsubscribes = [h.subscribe(unique) for h in self.hosts]

        def unsubscribe() -> None:
            for each in unsubscribes:
                each()

        return unsubscribe
