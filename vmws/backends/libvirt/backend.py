"""``LibvirtBackend``: the Backend seam over libvirt-python, for real QEMU/KVM guests.

How it keeps the loop free and the statuses honest:

- libvirtaio runs libvirt's event loop on the server's asyncio loop (registered in
  ``start()``, inside the running loop, before the connection opens). Lifecycle and
  reboot events arrive there; each one queues a state query, and one pump task applies
  the answers in order, so ``status`` follows events, never a polling timer.
- ``connection`` keeps the libvirt connection: every call that talks to the daemon
  runs in its small thread pool (a slow managed save or a hung daemon never blocks the
  loop), and when it drops (libvirtd restarted, keepalive timeout) it reconnects with
  exponential backoff. Meanwhile every VM is reported as ``error``; once back, the
  real statuses are sent.
- Only ``states`` maps libvirt states to statuses; only ``translate`` turns libvirt
  exceptions into ``vmws.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import gc
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import libvirt

from vmws.backend import (
    Action,
    Backend,
    Capability,
    ConsoleStream,
    MetricsSample,
    StatusListener,
    Step,
    VMInfo,
    VMStatus,
    check_screen_status,
    step_of,
)
from vmws.backends.libvirt.aio import ensure_event_impl
from vmws.backends.libvirt.connection import DomainStates, LibvirtConnection
from vmws.backends.libvirt.console import LibvirtConsole
from vmws.backends.libvirt.host_id import host_identity
from vmws.backends.libvirt.metrics import (
    Counters,
    CpuReading,
    counters_of,
    idle_sample,
    sample_from_stats,
    with_base,
)
from vmws.backends.libvirt.screen import open_vnc_socket, uri_refusal
from vmws.backends.libvirt.states import DomainState, LifecycleEvent, status_of
from vmws.backends.libvirt.stats import read_stats
from vmws.config import Config
from vmws.errors import (
    BackendError,
    BackendUnavailable,
    NoScreen,
    VMNotFound,
    VMNotRunning,
)

__all__ = ["LibvirtBackend"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_LIVE = frozenset({VMStatus.RUNNING, VMStatus.PAUSED})
# Seconds between repeated ACPI requests (shutdown, reboot) to a guest that ignores them.
_REPRESS_AFTER = 5.0
# libvirt may report one guest reboot more than once (reset + lifecycle); these coalesce.
_REBOOT_COALESCE = 1.0
_DRAIN_TIMEOUT = 2.0
_BALLOON_PERIOD = 2
# (state, reason, has managed save, memory bytes) as read from libvirt.
_State = tuple[int, int, bool, int]


@dataclass(slots=True)
class _VM:
    """What the backend knows of one domain between events (mutable, module-private)."""

    name: str
    status: VMStatus
    changed_at: float
    memory_total: int = 0
    boot_time: float | None = None
    uptime_at_suspend: float = 0.0
    cpu: CpuReading | None = None
    applied_query: int = 0
    # ``stop`` of a crashed, shut-off domain: libvirt keeps saying "crashed", the
    # protocol says stopped until the next start.
    error_cleared: bool = False
    reboots: int = 0
    # A restore from managed save starts a new QEMU process whose counters begin at 0;
    # the guest did not reboot, so the counters carry on from where the save left them.
    counter_base: Counters = (0, 0, 0, 0)
    last_counters: Counters = (0, 0, 0, 0)
    stats_period_set: bool = False
    waiters: list[tuple[Callable[[_VM], bool], asyncio.Future[None]]] = field(default_factory=list)

    def uptime(self, now: float) -> float:
        if self.status in _LIVE and self.boot_time is not None:
            return max(0.0, now - self.boot_time)
        return 0.0

    def info(self, now: float) -> VMInfo:
        return VMInfo(self.name, self.status, self.changed_at, round(self.uptime(now), 3))


def _process_boot_time(uri: str, name: str) -> float | None:
    """When the QEMU process of a domain already running on a local system URI started."""
    if not uri.startswith("qemu:///system"):
        return None
    try:
        pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())
        start_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return btime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _set_stats_period(dom: libvirt.virDomain) -> None:
    try:
        dom.setMemoryStatsPeriod(_BALLOON_PERIOD, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError:
        pass


class LibvirtBackend(Backend):
    """VMs of one libvirt connection (``uri``), optionally only those matching ``vm_filter``."""

    def __init__(
        self,
        *,
        uri: str = "qemu:///system",
        vm_filter: str | None = None,
        stop_timeout: float = 60.0,
        restart_timeout: float = 60.0,
        reconnect_max_delay: float = 10.0,
        node: str = "",
    ) -> None:
        self.uri = uri
        self.node = node  # names a node-local host (test:///) in its id
        # The hypervisor host this connection reaches (``host_id``), known once connected.
        self.host_id = ""
        self.vm_filter = vm_filter
        self.stop_timeout = stop_timeout
        self.restart_timeout = restart_timeout
        self.reconnect_max_delay = reconnect_max_delay
        # libvirt's test driver keeps no console; everything else it has.
        if uri.startswith("test:"):
            self.capabilities = frozenset({Capability.METRICS, Capability.SUSPEND, Capability.PAUSE})
        else:
            self.capabilities = frozenset(Capability)
        # The test driver reboots synchronously and sends no reboot event; QEMU's
        # reboot only presses the power button, and the event says when it happened.
        self._reboot_is_async = not uri.startswith("test:")
        self.connection = LibvirtConnection(
            uri,
            serves=self._serves,
            read_state=self._read_state,
            on_lifecycle=self._on_lifecycle,
            on_reboot=self._on_reboot,
            on_connected=self._connected,
            on_lost=self._lost,
            reconnect_max_delay=reconnect_max_delay,
        )
        self._vms: dict[str, _VM] = {}
        self._domains: dict[str, libvirt.virDomain] = {}
        self._listeners: list[StatusListener] = []
        self._consoles: dict[str, LibvirtConsole] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._events: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._query_seq = 0
        self._closing = False

    @classmethod
    def from_config(cls, config: Config) -> Any:
        """One connection per ``--libvirt-uri``; several make a ``MultiHostBackend``."""
        if config.shard:
            raise ValueError("--shard applies to the simulator; libvirt VMs are owned through Redis (docs/cluster.md)")
        node = config.node_name or socket.gethostname()
        backends = [cls(uri=uri, vm_filter=config.vm_filter, node=node) for uri in config.libvirt_uris]
        if len(backends) == 1:
            return backends[0]
        from vmws.backends.libvirt.hosts import MultiHostBackend

        return MultiHostBackend(backends)

    # Lifecycle of the backend

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._impl = ensure_event_impl()
        self._events = asyncio.Queue()
        try:
            await self.connection.open()
        except libvirt.libvirtError as exc:
            raise BackendUnavailable(
                f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()} "
                f"(is libvirtd running? try `python -m harness doctor`)"
            ) from None
        self.host_id = await self.connection.run(host_identity, self.connection.require(), self.uri, self.node)
        self._tasks.append(asyncio.ensure_future(self._pump()))

    async def close(self) -> None:
        self._closing = True
        for console in list(self._consoles.values()):
            await console.close()
        self._consoles.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._domains.clear()  # they hold the connection (see LibvirtConnection._disconnect)
        await self.connection.close()
        # Streams and connections left from before a reconnect go now, not in a callback.
        gc.collect()
        # Let libvirt's free-callbacks run before the loop goes (libvirtaio's advice).
        try:
            await asyncio.wait_for(self._impl.drain(), _DRAIN_TIMEOUT)
        except TimeoutError:
            log.info("libvirt event callbacks still registered after close: %r", self._impl)

    # Backend interface

    async def list(self) -> list[VMInfo]:
        self._require_started()
        now = time.time()
        return [self._vms[name].info(now) for name in sorted(self._vms)]

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a domain seen on this connection (no libvirt call)."""
        return name in self._vms

    def names(self) -> set[str]:
        """Every domain seen on this connection."""
        return set(self._vms)

    def host_of(self, name: str) -> str | None:
        """The host id serving ``name`` (this connection's), None if unknown here."""
        return self.host_id if name in self._vms else None

    async def get(self, name: str) -> VMInfo:
        return self._vm_record(name).info(time.time()) if name in self._vms else await self._discover(name)

    async def sample(self, name: str) -> MetricsSample:
        vm = await self._known(name)
        self.check_capability(Capability.METRICS, "sample a VM's metrics")
        now = time.time()
        if vm.status not in _LIVE:
            return idle_sample(now, vm.memory_total)
        dom = await self._domain(name)
        if not vm.stats_period_set:
            # Guest memory figures need the balloon's stats period (domains vmws did not
            # define may have none); set once per boot, ignored where unsupported.
            vm.stats_period_set = True
            await self._call(_set_stats_period, dom, name=name, what="metrics setup")
        stats = await self._call(read_stats, dom, name=name, what="reading metrics")
        raw, vm.cpu = sample_from_stats(
            stats,
            timestamp=now,
            monotonic=self._loop.time(),
            previous=vm.cpu,
            uptime=vm.uptime(now),
            memory_total=vm.memory_total,
        )
        sample = with_base(raw, vm.counter_base)
        vm.last_counters = counters_of(sample)
        return sample

    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        vm = await self._known(name)
        self.check_action(action)
        # A forced stop is the way out of a graceful stop the guest ignores (that one
        # holds the lock for up to ``stop_timeout``): like `virsh destroy`, it cuts in.
        # The graceful stop then sees the VM stopped and returns too.
        cuts_in = action is Action.STOP and force
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with contextlib.nullcontext() if cuts_in else lock:
            await self._refresh(name)
            step = step_of(action, vm.status, name)  # VMNotRunning where the table refuses
            if step is not Step.NOOP:
                await self._STEPS[step](self, vm, action, force)
                await self._refresh(name)
            return vm.info(time.time())

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def open_console(self, name: str) -> ConsoleStream:
        vm = await self._known(name)
        self.check_capability(Capability.CONSOLE, "open a VM's serial console")
        if vm.status is not VMStatus.RUNNING:
            # A paused guest's console would take no input: refused, as docs/protocol.md
            # says; viewers already attached stay (``_open_stream`` re-opens while paused).
            raise VMNotRunning(f"VM {name!r} is {vm.status.value}, not running")
        old = self._consoles.pop(name, None)
        if old is not None:
            await old.close()
        console = LibvirtConsole(name, functools.partial(self._open_stream, name), self._release_stream)
        await console.attach()
        self._consoles[name] = console
        return console

    async def open_screen(self, name: str) -> socket.socket:
        vm = await self._known(name)  # VMNotFound first
        check_screen_status(vm.info(time.time()))  # then VMNotRunning unless running or paused
        refusal = uri_refusal(self.uri)
        if refusal is not None:
            raise NoScreen(f"cannot open the screen of VM {name!r}: {refusal}")
        dom = await self._domain(name)
        # A domain that stopped since the last event: libvirt says so, VMNotRunning.
        return await self._call(open_vnc_socket, dom, name, name=name, what="opening the screen")

    # Actions: each step of vmws.backend.ACTIONS, as libvirt calls

    async def _boot(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        if vm.status is VMStatus.ERROR and await self._call(dom.isActive, name=vm.name):
            # A crashed domain kept for inspection must go before it can boot again.
            await self._destroy(dom, vm.name)
        await self._call(dom.create, name=vm.name, what=action.value)

    async def _shutdown(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        if force:
            await self._destroy(dom, vm.name)
            return
        # Graceful first (ACPI power button, or the guest agent where there is one).
        stopped = await self._press(
            vm, dom.shutdown, lambda v: v.status is not VMStatus.RUNNING, self.stop_timeout, "stop"
        )
        if not stopped:
            log.info("VM %s ignored the shutdown request for %.0f s: forcing it off", vm.name, self.stop_timeout)
            await self._destroy(dom, vm.name)

    async def _power_off(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        if vm.status is VMStatus.SUSPENDED:
            await self._call(dom.managedSaveRemove, 0, name=vm.name, what=action.value)
        elif vm.status is VMStatus.ERROR and not await self._call(dom.isActive, name=vm.name):
            vm.error_cleared = True  # shut off already: stopped from now on, for the protocol
        else:
            await self._destroy(dom, vm.name)

    async def _reboot(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        before = vm.reboots
        if not force:
            if not self._reboot_is_async:
                await self._call(dom.reboot, 0, name=vm.name, what=action.value)
                self._rebooted(vm.name)
                return
            if await self._press(
                vm, functools.partial(dom.reboot, 0), lambda v: v.reboots > before, self.restart_timeout, "restart"
            ):
                return
            log.info("VM %s did not reboot within %.0f s: resetting it", vm.name, self.restart_timeout)
        await self._call(dom.reset, 0, name=vm.name, what=action.value)
        if not self._reboot_is_async or not await self._wait(vm, lambda v: v.reboots > before, 5.0):
            self._rebooted(vm.name)

    async def _save(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        # SAVE_RUNNING: a VM suspended while paused comes back running on resume.
        await self._call(dom.managedSave, libvirt.VIR_DOMAIN_SAVE_RUNNING, name=vm.name, what=action.value)

    async def _restore(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        # create() restores the managed-save image.
        await self._call(dom.create, name=vm.name, what=action.value)

    async def _pause(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        await self._call(dom.suspend, name=vm.name, what=action.value)

    async def _unpause(self, vm: _VM, action: Action, force: bool) -> None:
        dom = await self._domain(vm.name)
        await self._call(dom.resume, name=vm.name, what=action.value)

    # step → how libvirt carries it out (the table itself is vmws.backend.ACTIONS)
    _STEPS: ClassVar[dict[Step, Callable[[LibvirtBackend, _VM, Action, bool], Awaitable[None]]]] = {
        Step.BOOT: _boot, Step.SHUTDOWN: _shutdown, Step.POWER_OFF: _power_off, Step.REBOOT: _reboot,
        Step.SAVE: _save, Step.RESTORE: _restore, Step.PAUSE: _pause, Step.UNPAUSE: _unpause,
    }  # fmt: skip

    async def _press(
        self, vm: _VM, request: Callable[[], object], done: Callable[[_VM], bool], timeout: float, what: str
    ) -> bool:
        """Ask the guest (``request``) until ``done(vm)`` or ``timeout``.

        The request is repeated every few seconds: a guest still booting has no ACPI
        handler yet and drops the first power-button press, as real guests do.
        """
        deadline = self._loop.time() + timeout
        while True:
            try:
                await self._call(request, name=vm.name, what=what)
            except VMNotRunning:
                # A forced stop cut in between two presses: the domain is gone already.
                await self._refresh(vm.name)
                return done(vm)
            left = deadline - self._loop.time()
            if await self._wait(vm, done, min(left, _REPRESS_AFTER)):
                return True
            if self._loop.time() >= deadline or vm.status not in _LIVE:
                return done(vm)

    async def _destroy(self, dom: libvirt.virDomain, name: str) -> None:
        try:
            await self._call(dom.destroy, name=name, what="stop")
        except VMNotRunning:
            pass  # it went down by itself meanwhile

    # State tracking

    def _serves(self, name: str) -> bool:
        return self.vm_filter is None or fnmatch.fnmatchcase(name, self.vm_filter)

    def _require_started(self) -> None:
        if self._events is None:
            raise BackendUnavailable("the libvirt backend was not started")

    def _vm_record(self, name: str) -> _VM:
        return self._vms[name]

    async def _known(self, name: str) -> _VM:
        if name not in self._vms:
            await self._discover(name)
        return self._vms[name]

    async def _discover(self, name: str) -> VMInfo:
        """A VM not seen yet (defined while an event was missed): look it up."""
        self._require_started()
        if not self._serves(name):
            raise VMNotFound(f"VM {name!r} not found")
        await self._domain(name)
        await self._refresh(name)
        return self._vms[name].info(time.time())

    async def _domain(self, name: str) -> libvirt.virDomain:
        if not self._serves(name):
            raise VMNotFound(f"VM {name!r} not found")
        dom = self._domains.get(name)
        if dom is None:
            conn = self.connection.require()
            dom = await self._call(conn.lookupByName, name, name=name, what="lookup")
            self._domains[name] = dom
        return dom

    async def _refresh(self, name: str) -> None:
        """Ask libvirt for the domain's state now and apply it."""
        self._query_seq += 1
        query = self._query_seq
        dom = await self._domain(name)
        try:
            state, reason, managed, memory = await self._call(self._read_state, dom, name=name, what="status")
        except VMNotFound:
            self._forget(name)
            raise
        self._apply(name, query, status_of(state, reason, managed_save=managed), memory, state)

    @staticmethod
    def _read_state(dom: libvirt.virDomain) -> _State:
        state, reason = dom.state()
        managed = bool(dom.hasManagedSaveImage(0)) if state == DomainState.SHUTOFF else False
        return state, reason, managed, dom.maxMemory() * 1024

    def _apply(self, name: str, query: int, status: VMStatus, memory_total: int, state: int) -> None:
        now = time.time()
        vm = self._vms.get(name)
        if vm is None:
            boot = (_process_boot_time(self.uri, name) or now) if status in _LIVE else None
            vm = self._vms[name] = _VM(name, status, now, memory_total, boot)
            vm.applied_query = query
            return
        if query < vm.applied_query:
            return  # an older answer overtaken by a newer one
        vm.applied_query = query
        vm.memory_total = memory_total or vm.memory_total
        if status is VMStatus.ERROR and vm.error_cleared and state == DomainState.SHUTOFF:
            status = VMStatus.STOPPED
        if status is vm.status:
            self._wake(vm)
            return
        self._transition(vm, status, now)

    def _transition(self, vm: _VM, status: VMStatus, now: float, *, end_console: bool = True) -> None:
        old = vm.status
        if status in _LIVE and old not in _LIVE:
            vm.error_cleared = False
            vm.cpu = None
            vm.stats_period_set = False
            vm.counter_base = vm.last_counters if old is VMStatus.SUSPENDED else (0, 0, 0, 0)
            vm.last_counters = vm.counter_base
            # A restore continues the guest's life where the save left it.
            vm.boot_time = now - (vm.uptime_at_suspend if old is VMStatus.SUSPENDED else 0.0)
        if status is VMStatus.SUSPENDED and old in _LIVE:
            vm.uptime_at_suspend = vm.uptime(now)
        elif status not in _LIVE:
            vm.uptime_at_suspend = 0.0 if status is not VMStatus.SUSPENDED else vm.uptime_at_suspend
        vm.status = status
        vm.changed_at = now
        if status not in _LIVE and end_console:
            console = self._consoles.pop(vm.name, None)
            if console is not None:
                console.end()
        self._emit(vm)
        self._wake(vm)

    def _rebooted(self, name: str) -> None:
        vm = self._vms.get(name)
        if vm is None:
            return
        now = time.time()
        vm.reboots += 1
        if vm.boot_time is not None and now - vm.boot_time < _REBOOT_COALESCE:
            self._wake(vm)
            return
        vm.boot_time = now
        vm.changed_at = now
        vm.cpu = None
        # The status stays running, but watchers learn of the restart (uptime 0).
        self._emit(vm)
        self._wake(vm)

    def _forget(self, name: str) -> None:
        self._domains.pop(name, None)
        self._vms.pop(name, None)
        console = self._consoles.pop(name, None)
        if console is not None:
            console.end()

    def _emit(self, vm: _VM) -> None:
        info = vm.info(time.time())
        for listener in list(self._listeners):
            try:
                listener(info)
            except Exception:  # a broken listener must not stop the others
                log.exception("status listener failed for VM %s", vm.name)

    def _wake(self, vm: _VM) -> None:
        still = []
        for predicate, future in vm.waiters:
            if future.done():
                continue
            if predicate(vm):
                future.set_result(None)
            else:
                still.append((predicate, future))
        vm.waiters = still

    async def _wait(self, vm: _VM, predicate: Callable[[_VM], bool], timeout: float) -> bool:
        """Wait until ``predicate(vm)`` holds, driven by events; False after ``timeout``."""
        deadline = self._loop.time() + timeout
        while not predicate(vm):
            left = deadline - self._loop.time()
            if left <= 0:
                return False
            future: asyncio.Future[None] = self._loop.create_future()
            vm.waiters.append((predicate, future))
            try:
                # Events should wake us; a state query every few seconds covers a lost one.
                await asyncio.wait_for(future, min(left, 5.0))
            except TimeoutError:
                await self._refresh(vm.name)
        return True

    # Events

    def _on_lifecycle(self, _conn: Any, dom: libvirt.virDomain, event: int, _detail: int, _opaque: Any) -> None:
        name = dom.name()
        if not self._serves(name) or self._events is None:
            return
        if event == LifecycleEvent.UNDEFINED:
            self._forget(name)
            return
        self._events.put_nowait(name)

    def _on_reboot(self, _conn: Any, dom: libvirt.virDomain, _opaque: Any) -> None:
        name = dom.name()
        if self._serves(name):
            self._rebooted(name)

    async def _pump(self) -> None:
        assert self._events is not None
        while True:
            name = await self._events.get()
            try:
                await self._refresh(name)
            except VMNotFound:
                pass
            except BackendError as exc:
                log.debug("status of %s not refreshed: %s", name, exc.message)

    # Connection

    async def _call(self, fn: Callable[..., T], *args: Any, name: str | None = None, what: str = "operation") -> T:
        """``connection.call``; a domain libvirt no longer knows is looked up afresh next time."""
        try:
            return await self.connection.call(fn, *args, name=name, what=what)
        except VMNotFound:
            if name is not None:
                self._domains.pop(name, None)
            raise

    def _connected(self, states: DomainStates) -> None:
        """(Re)connected: every served domain's state, as ``_read_state`` read it."""
        self._domains.clear()
        seen = set()
        for name, (state, reason, managed, memory) in states:
            seen.add(name)
            self._query_seq += 1
            self._apply(name, self._query_seq, status_of(state, reason, managed_save=managed), memory, state)
        for name in set(self._vms) - seen:
            self._forget(name)

    def _lost(self) -> None:
        """libvirt went away (the connection reconnects by itself)."""
        self._domains.clear()
        now = time.time()
        for vm in self._vms.values():
            if vm.status is not VMStatus.ERROR:
                # Unknown while libvirt is away: watchers see an error, then the truth.
                # The guest itself runs on, so its console is re-opened, not ended.
                self._transition(vm, VMStatus.ERROR, now, end_console=False)
        # A stream of the dead connection never says so: drop each now, so that every
        # console re-opens once libvirt is back, also one nobody types into.
        for console in list(self._consoles.values()):
            console.connection_lost()

    # Consoles

    async def _open_stream(self, name: str) -> libvirt.virStream | None:
        """A fresh console stream if the VM is running (waiting out a reconnect), else None."""
        if self._closing:
            return None
        if self.connection.conn is None:
            try:
                await asyncio.wait_for(self.connection.connected.wait(), self.restart_timeout)
            except TimeoutError:
                return None
        await self._refresh(name)
        vm = self._vms.get(name)
        if vm is None or vm.status not in _LIVE:
            return None
        dom = await self._domain(name)
        conn = self.connection.require()
        try:
            return await self._call(self._open_console_stream, conn, dom, name=name, what="console")
        except VMNotRunning:
            return None

    @staticmethod
    def _open_console_stream(conn: libvirt.virConnect, dom: libvirt.virDomain) -> libvirt.virStream:
        stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        # FORCE takes the console over from a stale holder (a crashed vmws, a left-over
        # `virsh console`): libvirt allows one reader per domain and the hub is it.
        dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        return stream

    async def _release_stream(self, stream: libvirt.virStream) -> None:
        try:
            await self.connection.run(stream.abort)
        except libvirt.libvirtError:
            pass
