"""One libvirt connection kept open: its thread pool, its event callbacks, reconnects.

virt-manager keeps the connection (``connection.py``) apart from the domains it serves;
so does vmws. ``LibvirtConnection`` opens the connection and registers the lifecycle and
reboot callbacks before it lists the domains (so no change between the listing and the
events is lost), runs every blocking libvirt call in a small thread pool (a slow managed
save or a hung daemon never blocks the loop), and translates libvirt's errors
(``translate``). When the connection drops (libvirtd restarted, keepalive timeout) it
tells its owner (``on_lost``) and retries with exponential backoff; once back, callbacks
are registered again and the owner gets every domain's state (``on_connected``).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import gc
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import libvirt

from vmws.backends.libvirt.translate import translate
from vmws.errors import BackendUnavailable

__all__ = ["LibvirtConnection", "DomainStates"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# (name, what ``read_state`` returned) for every domain served, read right after connecting.
DomainStates = builtins.list[tuple[str, Any]]
_KEEPALIVE = (5, 3)  # a dead daemon is noticed within ~15 s even when no call is in flight
_FIRST_RETRY = 0.5


class LibvirtConnection:
    """The connection to ``uri``; the owner hands in what to do with events and states."""

    def __init__(
        self,
        uri: str,
        *,
        serves: Callable[[str], bool],
        read_state: Callable[[libvirt.virDomain], Any],
        on_lifecycle: Callable[[Any, libvirt.virDomain, int, int, Any], None],
        on_reboot: Callable[[Any, libvirt.virDomain, Any], None],
        on_connected: Callable[[DomainStates], None],
        on_lost: Callable[[], None],
        reconnect_max_delay: float = 10.0,
    ) -> None:
        self.uri = uri
        self.reconnect_max_delay = reconnect_max_delay
        self._serves = serves
        self._read_state = read_state
        self._on_lifecycle = on_lifecycle
        self._on_reboot = on_reboot
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="libvirt")
        self._conn: libvirt.virConnect | None = None
        self._callback_ids: list[int] = []
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()

    # Opening and closing

    async def open(self) -> None:
        """Connect for the first time; ``libvirt.libvirtError`` if libvirt is not there."""
        self._loop = asyncio.get_running_loop()
        await self._connect()

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            self._disconnect(conn)
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def conn(self) -> libvirt.virConnect | None:
        """The live connection, or None while libvirt is away."""
        return self._conn

    def require(self) -> libvirt.virConnect:
        if self._conn is None:
            raise BackendUnavailable(f"libvirt at {self.uri} is unreachable; reconnecting")
        return self._conn

    # Calls

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the thread pool, libvirt's errors as they are."""
        return await self._loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def call(self, fn: Callable[..., T], *args: Any, name: str | None = None, what: str = "operation") -> T:
        """Run a blocking libvirt call off the loop, translating its errors.

        An error that says the daemon is gone starts the reconnect.
        """
        self.require()
        try:
            return await self.run(fn, *args)
        except libvirt.libvirtError as exc:
            error = translate(exc, name, what)
        if isinstance(error, BackendUnavailable):
            self.lost()
        raise error

    # Losing it and getting it back

    def lost(self) -> None:
        """The daemon went away (a failed call, the close callback, a test): reconnect."""
        if self._conn is None or self._closing:
            return
        conn, self._conn = self._conn, None
        self.connected.clear()
        # Not from here: this may run inside a libvirt callback of ``conn`` itself.
        self._loop.call_soon(self._disconnect, conn)
        self._on_lost()
        if self._reconnecting is None:
            self._reconnecting = asyncio.ensure_future(self._reconnect())

    def _open(self) -> tuple[libvirt.virConnect, builtins.list[int], DomainStates]:
        """Connect, subscribe, then read every domain's state (blocking: in the pool)."""
        conn = libvirt.open(self.uri)
        try:
            conn.setKeepAlive(*_KEEPALIVE)
        except libvirt.libvirtError:
            pass  # local drivers (test:///) have no keepalive
        callback_ids = [
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None),
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot, None),
        ]
        try:
            conn.registerCloseCallback(self._on_close, None)
        except libvirt.libvirtError:
            pass
        states = [(dom.name(), self._read_state(dom)) for dom in conn.listAllDomains(0) if self._serves(dom.name())]
        return conn, callback_ids, states

    async def _connect(self) -> None:
        conn, self._callback_ids, states = await self.run(self._open)
        self._conn = conn
        self._on_connected(states)
        self.connected.set()
        log.info("connected to %s: %d VMs", self.uri, len(states))

    def _disconnect(self, conn: libvirt.virConnect) -> None:
        """Deregister and close ``conn`` so that it is freed here and now, on the loop thread.

        Domain objects keep their connection alive, and some sit in reference cycles
        (an exception's traceback holding a frame holding a domain). Were the last of
        them collected later, inside one of libvirt's own callbacks for that same
        connection, freeing the connection there would deadlock on its client lock.
        So they are collected first, while nothing of libvirt's is on the stack (the
        owner dropped its domain objects in ``on_lost`` or before ``close``).
        """
        gc.collect()
        for cb_id in self._callback_ids:
            try:
                conn.domainEventDeregisterAny(cb_id)
            except libvirt.libvirtError:
                pass
        self._callback_ids = []
        try:
            conn.unregisterCloseCallback()
        except libvirt.libvirtError:
            pass
        try:
            conn.close()
        except libvirt.libvirtError:
            pass

    def _on_close(self, conn: libvirt.virConnect, reason: int, _opaque: Any) -> None:
        if conn is self._conn and not self._closing:
            log.warning("libvirt connection to %s closed (reason %d)", self.uri, reason)
            self.lost()

    async def _reconnect(self) -> None:
        delay = _FIRST_RETRY
        try:
            while not self._closing:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                    return
                except libvirt.libvirtError as exc:
                    log.info(
                        "reconnect to %s failed: %s; next try in %.1f s",
                        self.uri,
                        exc.get_error_message(),
                        min(delay * 2, self.reconnect_max_delay),
                    )
                    delay = min(delay * 2, self.reconnect_max_delay)
        finally:
            self._reconnecting = None
