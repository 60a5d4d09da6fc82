"""libvirt's event loop, running on the server's asyncio loop (libvirtaio).

libvirt has one process-wide event implementation, which must be registered before
any connection is opened. ``ensure_event_impl`` registers libvirtaio's once, from
inside the running loop. A later loop (tests run one loop per test module) gets a
fresh registration only once the previous loop has stopped, so two live loops never
share libvirt's callbacks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import libvirt
import libvirtaio

__all__ = ["ensure_event_impl"]

log = logging.getLogger(__name__)
_quiet = False


def _ignore_error(_ctx: Any, _err: Any) -> None:
    # libvirt prints every error to stderr by default; ours are raised as exceptions
    # and translated (harness.translate), so the print is noise.
    return None


def ensure_event_impl() -> libvirtaio.virEventAsyncIOImpl:
    """The libvirtaio implementation bound to the running loop, registering it if needed."""
    global _quiet
    loop = asyncio.get_running_loop()
    if not _quiet:
        libvirt.registerErrorHandler(_ignore_error, None)
        _quiet = True
    impl = libvirtaio.getCurrentImpl()
    if impl is not None and impl.loop is loop:
        return impl
    if impl is not None and impl.loop.is_running():
        raise RuntimeError("libvirt's event implementation is bound to another running event loop")
    if impl is not None and not impl.is_idle():
        log.warning("re-binding libvirt events to a new loop with callbacks left over: %r", impl)
    return libvirtaio.virEventRegisterAsyncIOImpl(loop=loop)
