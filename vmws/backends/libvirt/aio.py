"""libvirt's event loop, running on the server's asyncio loop (libvirtaio).

libvirt has one process-wide event implementation, registered once and for good,
before any connection is opened. ``ensure_event_impl`` registers libvirtaio's from
inside the running loop. A process that runs loops one after another (pytest-asyncio
gives each test its own) has the implementation moved to the new loop once the old
one has stopped; two live loops never share it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import libvirt
import libvirtaio

__all__ = ["ensure_event_impl", "quiet_libvirt"]

log = logging.getLogger(__name__)
_quiet = False


def _ignore_error(_ctx: Any, _err: Any) -> None:
    # libvirt prints every error to stderr by default; ours are raised as exceptions
    # and translated (vmws.backends.libvirt.translate), so the print is noise.
    return None


def _rebind(impl: libvirtaio.virEventAsyncIOImpl, loop: asyncio.AbstractEventLoop) -> None:
    """Move libvirt's callbacks from a finished loop to ``loop``.

    libvirt accepts one event implementation per process for good, so a process that
    runs several loops in turn (one per test) moves the one it has: watches and timers
    still registered are re-armed on the new loop; free-callbacks the old loop never
    ran are dropped from the pending count so ``drain()`` does not wait for them.
    """
    if not impl.is_idle():
        log.info("moving libvirt event callbacks to a new loop: %r", impl)
    impl.loop = loop
    impl._pending = 0
    impl._finished = None
    for callback in list(impl.callbacks.values()):
        if isinstance(callback, libvirtaio.TimeoutCallback) and callback._task is not None:
            callback._task = None
            callback.update(callback.timeout)
    for descriptor in list(impl.descriptors.values()):
        descriptor.update()


def quiet_libvirt() -> None:
    """Stop libvirt printing errors to stderr (once per process)."""
    global _quiet
    if not _quiet:
        libvirt.registerErrorHandler(_ignore_error, None)
        _quiet = True


def ensure_event_impl() -> libvirtaio.virEventAsyncIOImpl:
    """The libvirtaio implementation bound to the running loop, registering it if needed."""
    loop = asyncio.get_running_loop()
    quiet_libvirt()
    impl = libvirtaio.getCurrentImpl()
    if impl is None:
        return libvirtaio.virEventRegisterAsyncIOImpl(loop=loop)
    if impl.loop is not loop:
        if impl.loop.is_running():
            raise RuntimeError("libvirt's event implementation is bound to another running event loop")
        _rebind(impl, loop)
    return impl
