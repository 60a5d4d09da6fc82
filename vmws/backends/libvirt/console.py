"""A VM's serial console as a ``ConsoleStream`` over a non-blocking libvirt stream.

Modelled on virt-manager's serial console: the stream's callback (run on the asyncio
loop by libvirtaio) reads until libvirt says "try again" (-2); ``b""`` is the end of
the stream; writable interest is asked for only while typed input is queued. When the
stream ends, the backend's ``opener`` decides what that meant: it hands back a fresh
stream if the VM is still (or again) running, as after a restart or a libvirtd restart,
or ``None`` when the VM stopped, and then readers get ``b""``. The backend also calls
``connection_lost`` when libvirtd goes away: a stream of a dead connection reports
nothing by itself, so without it a console nobody types into would stay silent.

Both directions are bounded. Output: at most ``READ_LIMIT`` bytes wait for the hub
(which stops reading while its viewers are behind); beyond that, what the guest prints
is read and dropped, as a UART without flow control drops what overruns it, and logged
once per episode. Not reading instead would not hold the guest back: libvirt's client
library keeps taking stream data from libvirtd into its own unbounded queue whatever
events are watched (measured: the server grew at the guest's output rate), so the
stream is drained always and the bound is kept here.
Input: at most ``PENDING_LIMIT`` typed bytes wait for the guest; the excess is dropped
(a UART drops what it cannot take) and logged once per console.

libvirt's remote driver never calls the free callback of a stream's event callback
(``remoteStreamCallbackFree`` tests ``!cbdata->cb``, which never holds), so
libvirt-python's reference to its callback data is never dropped, and that data holds
the stream, the stream its connection, and the callback this console and its backend.
``_watch``/``_unwatch`` keep that data and empty it once the callback is removed, so
each stream and its (possibly dead) connection are freed when this module lets go.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import libvirt

from vmws.backend import ConsoleStream
from vmws.errors import BackendError, VMNotRunning

__all__ = ["LibvirtConsole", "StreamOpener"]

log = logging.getLogger(__name__)

StreamOpener = Callable[[], Awaitable["libvirt.virStream | None"]]

_CHUNK = 64 * 1024
# Output held for the hub before libvirt is no longer asked for more (see the docstring).
READ_LIMIT = 256 * 1024
# Typed input waiting for the guest; the rest is dropped.
PENDING_LIMIT = 16 * 1024
_TRY_AGAIN = -2
# libvirt-python's C module: the stream callback is registered through it directly so
# that this module holds the callback data (see the module docstring).
_libvirtmod = importlib.import_module("libvirtmod")


class _Detached:
    """Stands in for a stream in callback data libvirt keeps after the callback is gone."""

    def _dispatchStreamEventCallback(self, _events: int, _data: object) -> int:  # noqa: N802 (libvirt's name)
        return 0


_DETACHED = _Detached()


class LibvirtConsole(ConsoleStream):
    """One VM's console; the hub owns it and shares it among viewers."""

    def __init__(
        self, name: str, opener: StreamOpener, release: Callable[[libvirt.virStream], Awaitable[None]]
    ) -> None:
        self.name = name
        self._opener = opener
        self._release_stream = release
        self._stream: libvirt.virStream | None = None
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        self._queued = 0  # bytes in ``_output``
        self._dropped_output = 0  # bytes dropped since the hub last caught up
        self._pending = bytearray()
        self._dropped_input = False
        self._finished = False
        self._reopening: asyncio.Task[None] | None = None
        self._writable_wanted = False
        self._watching = 0  # the events libvirt was last asked for
        self._callback_data: dict[str, Any] | None = None

    # Public methods

    async def attach(self) -> None:
        """Open the first stream; ``VMNotRunning`` if the VM has no console now."""
        stream = await self._opener()
        if stream is None:
            raise VMNotRunning(f"VM {self.name!r} is not running")
        self._attach(stream)

    async def read(self) -> bytes:
        if self._finished and self._output.empty():
            return b""
        data = await self._output.get()
        if not data:
            # Leave the sentinel for any other pending reader.
            self._output.put_nowait(b"")
            return data
        self._queued -= len(data)
        if self._dropped_output and self._queued <= READ_LIMIT // 2:
            log.info(
                "console %s: viewers caught up; %d bytes of output were dropped meanwhile",
                self.name,
                self._dropped_output,
            )
            self._dropped_output = 0
        return data

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise VMNotRunning(f"the console of VM {self.name!r} is closed")
        room = PENDING_LIMIT - len(self._pending)
        if len(data) > room:
            if not self._dropped_input:
                self._dropped_input = True
                log.warning(
                    "console %s: the guest is not taking input; typed input over %d bytes dropped",
                    self.name,
                    PENDING_LIMIT,
                )
            data = data[: max(0, room)]
        self._pending += data
        self._flush()

    async def close(self) -> None:
        self.end()
        if self._reopening is not None:
            self._reopening.cancel()
        await self._drop_stream()

    def end(self) -> None:
        """End the stream for readers (the VM stopped); no re-open follows."""
        if not self._finished:
            self._finished = True
            self._output.put_nowait(b"")
        stream, self._stream = self._stream, None
        if stream is not None:
            self._unwatch(stream)
            asyncio.ensure_future(self._release_stream(stream))

    def connection_lost(self) -> None:
        """libvirtd went away: drop the dead stream and re-open once it is back."""
        if self._stream is not None:
            self._lost()

    @property
    def finished(self) -> bool:
        return self._finished

    # Stream plumbing

    def _attach(self, stream: libvirt.virStream) -> None:
        self._stream = stream
        self._writable_wanted = False
        self._watching = 0
        self._watch(stream)
        self._flush()

    def _wanted_events(self) -> int:
        events: int = (
            libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP
        )
        if self._writable_wanted:
            events |= libvirt.VIR_STREAM_EVENT_WRITABLE
        return events

    def _update_events(self) -> None:
        """Ask libvirt for the events wanted now, if that changed."""
        stream = self._stream
        events = self._wanted_events()
        if stream is None or events == self._watching:
            return
        try:
            stream.eventUpdateCallback(events)
        except libvirt.libvirtError:
            self._lost()
            return
        self._watching = events

    def _watch(self, stream: libvirt.virStream) -> None:
        """``stream.eventAddCallback``, keeping the callback data (the data libvirt leaks)."""
        data: dict[str, Any] = {"stream": stream, "cb": self._on_event, "opaque": None}
        events = self._wanted_events()
        if _libvirtmod.virStreamEventAddCallback(stream._o, events, data) == -1:
            raise libvirt.libvirtError("virStreamEventAddCallback() failed")
        self._callback_data = data
        self._watching = events

    def _unwatch(self, stream: libvirt.virStream) -> None:
        try:
            stream.eventRemoveCallback()
        except libvirt.libvirtError:
            pass
        data, self._callback_data = self._callback_data, None
        if data is not None and data["stream"] is stream:
            # libvirt keeps ``data`` for good: let go of the stream, its connection and us.
            data["stream"] = _DETACHED
            data["cb"] = None

    async def _drop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._unwatch(stream)
            await self._release_stream(stream)

    def _on_event(self, stream: libvirt.virStream, events: int, _opaque: Any) -> None:
        if stream is not self._stream:
            return
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            self._read_available(stream)
        if self._stream is stream and events & libvirt.VIR_STREAM_EVENT_WRITABLE:
            self._flush()
        if self._stream is stream and events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            self._lost()

    def _read_available(self, stream: libvirt.virStream) -> None:
        while self._stream is not None and self._stream is stream:
            try:
                data = stream.recv(_CHUNK)
            except libvirt.libvirtError as exc:
                log.debug("console %s: recv failed: %s", self.name, exc)
                self._lost()
                return
            if data == _TRY_AGAIN:
                return
            if not data:
                self._lost()
                return
            if self._queued >= READ_LIMIT:
                if not self._dropped_output:
                    log.warning(
                        "console %s: viewers are behind a flood; output over %d bytes dropped", self.name, READ_LIMIT
                    )
                self._dropped_output += len(data)
                continue
            self._output.put_nowait(bytes(data))
            self._queued += len(data)

    def _flush(self) -> None:
        stream = self._stream
        if stream is None:
            return  # kept until the stream is back
        while self._pending:
            try:
                sent = stream.send(bytes(self._pending[:_CHUNK]))
            except libvirt.libvirtError as exc:
                log.debug("console %s: send failed: %s", self.name, exc)
                self._lost()
                return
            if sent == _TRY_AGAIN:
                break
            del self._pending[:sent]
        self._writable_wanted = bool(self._pending)
        self._update_events()

    def _lost(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._unwatch(stream)
            asyncio.ensure_future(self._release_stream(stream))
        if not self._finished and self._reopening is None:
            self._reopening = asyncio.ensure_future(self._reopen())

    async def _reopen(self) -> None:
        try:
            stream = await self._opener()
        except BackendError as exc:
            log.info("console %s: cannot re-open: %s", self.name, exc.message)
            stream = None
        finally:
            self._reopening = None
        if stream is not None and not self._finished:
            log.info("console %s: stream re-opened", self.name)
            self._attach(stream)
            return
        if stream is not None:
            await self._release_stream(stream)
        self.end()
