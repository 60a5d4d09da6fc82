"""One VM's shared console: a single backend stream fanned out to every viewer.

The hub is the console's only reader (libvirt allows one per domain). Output is
appended to the scrollback, decoded as UTF-8 incrementally (a character split across
reads stays whole; invalid bytes become U+FFFD), built into one message and sent to
every viewer. Reads coalesce naturally: while a send is under way more output
gathers in the stream, and the next read returns all of it. Input from any viewer
goes through one queue, so it reaches the guest in arrival order, exactly once; the
queue holds at most ``input_limit`` bytes (64 KiB) and input that does not fit is
dropped, as a UART drops what overruns its FIFO. Every viewer is told who is on the
console (``vmws/presence.py``) whenever someone joins or leaves.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Callable

from vmws import protocol
from vmws.backend import ConsoleStream
from vmws.codes import CloseCode
from vmws.logs import log_context
from vmws.peer import Peer
from vmws.presence import ConsoleMode, Presence
from vmws.scrollback import Scrollback

__all__ = ["ConsoleChannel", "INPUT_LIMIT_BYTES", "OutputListener"]

# Told of every chunk the console reads (channel, its byte offset, the bytes), and of the
# end (an empty chunk at the final offset): a cluster's owner node publishes them.
OutputListener = Callable[["ConsoleChannel", int, bytes], None]

log = logging.getLogger("vmws.console")
# Reading pauses while every viewer has more than this unsent (checked every _PACE_POLL s).
_PACE_BYTES = 128 * 1024
_PACE_POLL = 0.002
# Typed input queued for the guest and not yet written to it, in bytes.
INPUT_LIMIT_BYTES = 64 * 1024


def _backlog(peer: Peer) -> int:
    """Output queued for ``peer`` and not yet written to its socket."""
    return peer.pending_bytes


class ConsoleChannel:
    def __init__(
        self,
        vm: str,
        stream: ConsoleStream,
        scrollback: Scrollback,
        now: Callable[[], float],
        on_finished: Callable[[ConsoleChannel], None],
        input_limit: int = INPUT_LIMIT_BYTES,
        *,
        epoch: str | None = None,
        on_output: OutputListener | None = None,
        history: bytes = b"",
    ) -> None:
        self.vm = vm
        # Names the history these offsets count in; a new one means offsets restarted.
        self.epoch = epoch
        self._on_output = on_output
        self.viewers: set[Peer] = set()
        self.presence = Presence()
        self._stream = stream
        self._scrollback = scrollback
        self._now = now
        self._on_finished = on_finished
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if history:  # output read elsewhere (a cluster's owner node) before this channel
            scrollback.append(history)
            self._decoder.decode(history)  # a character split at its end stays whole
        self._inputs: asyncio.Queue[bytes] = asyncio.Queue()
        self._input_limit = input_limit
        self._input_bytes = 0  # queued or being written
        self._input_overrun = False  # dropping since the queue last drained (logged once)
        self._reader = asyncio.create_task(self._read_loop(), name=f"console-read:{vm}")
        self._writer = asyncio.create_task(self._write_loop(), name=f"console-write:{vm}")
        self.finished = False

    # Viewers

    def add_viewer(self, peer: Peer, since: int | None = None, mode: ConsoleMode = ConsoleMode.INTERACTIVE) -> None:
        """Send ``peer`` the held output (all of it, or from ``since``), then live output;
        every viewer, ``peer`` included, then gets the new list of viewers."""
        if self.finished:  # the VM stopped between opening and joining
            peer.send(
                protocol.console_message("", self._now(), eof=True, offset=self._scrollback.end, epoch=self.epoch)
            )
            peer.close(CloseCode.NORMAL_CLOSURE, "console closed: VM stopped")
            return
        held = len(self._decoder.getstate()[0])
        # Bytes the decoder still holds go out with the next live message, not here.
        first, data = self._scrollback.since(
            self._scrollback.start if since is None else since, self._scrollback.end - held
        )
        if data:
            text = data.decode("utf-8", errors="replace")
            peer.send(protocol.console_message(text, self._now(), offset=first, epoch=self.epoch))
        self.viewers.add(peer)
        self.presence.join(peer, mode, self._now())

    def remove_viewer(self, peer: Peer) -> None:
        self.viewers.discard(peer)
        self.presence.leave(peer, self._now())

    def viewer_count(self, user: str | None = None) -> int:
        """How many live viewers this console has (those of ``user`` only, if given)."""
        live = self._live_viewers()
        return len(live) if user is None else sum(1 for peer in live if peer.user == user)

    def _live_viewers(self) -> set[Peer]:
        """The viewers, once those being closed are dropped.

        A viewer being closed leaves at once, not when its socket is finally torn down:
        until then its backlog is meaningless (it falls to nothing when the socket goes)
        and, counted in ``_behind``, made a fast viewer's pace look kept up with, so the
        reader raced ahead and cut the fast viewer off too.
        """
        closing = [peer for peer in self.viewers if peer.closing]
        for peer in closing:
            self.viewers.discard(peer)
        return self.viewers

    def write(self, content: str) -> None:
        """Queue ``content`` for the guest (dropped once the console has finished)."""
        if not content or self.finished:
            return
        data = content.encode("utf-8")
        if self._input_bytes + len(data) > self._input_limit:
            if not self._input_overrun:
                self._input_overrun = True
                log.warning(
                    "console input to %s dropped: over %d bytes queued for the guest",
                    self.vm,
                    self._input_limit,
                    extra=log_context(vm=self.vm),
                )
            return
        self._input_bytes += len(data)
        self._inputs.put_nowait(data)

    async def close(self) -> None:
        """Stop reading; viewers are left to the caller (server shutdown)."""
        self._writer.cancel()
        await self._stream.close()
        await asyncio.gather(self._reader, self._writer, return_exceptions=True)

    # Loops

    async def _read_loop(self) -> None:
        try:
            while True:
                chunk = await self._stream.read()
                if not chunk:
                    break
                held = len(self._decoder.getstate()[0])
                offset = self._scrollback.end - held
                if self._on_output is not None:
                    self._on_output(self, self._scrollback.end, chunk)
                self._scrollback.append(chunk, self._now())
                text = self._decoder.decode(chunk)
                if text and self._live_viewers():
                    message = protocol.console_message(text, self._now(), offset=offset, epoch=self.epoch)
                    for peer in list(self.viewers):
                        peer.send(message)
                    # Read no faster than the fastest viewer takes it: a flood outran a
                    # lone viewer whose core was busy and had it cut off (4008) within
                    # 0.1 s. A viewer slower than another is still cut off at its bound.
                    if self._behind():
                        await asyncio.sleep(0)  # lets writes that already finished report it
                        while self._behind():
                            await asyncio.sleep(_PACE_POLL)
        except Exception:
            log.exception("console stream of %s failed", self.vm, extra=log_context(vm=self.vm))
        finally:
            self._finish()

    def _behind(self) -> bool:
        """Whether even the fastest live viewer has more than _PACE_BYTES unsent."""
        live = self._live_viewers()
        return bool(live) and min(_backlog(p) for p in live) > _PACE_BYTES

    async def _write_loop(self) -> None:
        while True:
            data = await self._inputs.get()
            try:
                await self._stream.write(data)
            except Exception as exc:  # the VM went away mid-write: eof follows
                log.info("console input to %s dropped: %s", self.vm, exc, extra=log_context(vm=self.vm))
            finally:
                self._input_bytes -= len(data)
                if not self._input_bytes:
                    self._input_overrun = False

    def _finish(self) -> None:
        self.finished = True
        self._writer.cancel()
        offset = self._scrollback.end - len(self._decoder.getstate()[0])
        tail = self._decoder.decode(b"", final=True)
        now = self._now()
        for peer in list(self.viewers):
            if tail:
                peer.send(protocol.console_message(tail, now, offset=offset, epoch=self.epoch))
            peer.send(protocol.console_message("", now, eof=True, offset=self._scrollback.end, epoch=self.epoch))
            peer.close(CloseCode.NORMAL_CLOSURE, "console closed: VM stopped")
        self.viewers.clear()
        self.presence.clear()  # all are being closed: nobody is left to tell
        if self._on_output is not None:
            self._on_output(self, self._scrollback.end, b"")
        self._on_finished(self)
