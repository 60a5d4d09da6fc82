"""``/ws/vms/{name}/screen``: a VM's screen, RFB over a binary WebSocket.

Authentication, Origin checks, the ``console`` permission (a ``watch``-only token, or
``?mode=watch``, makes the viewer view-only), per-user connection limits, token expiry
and revocation are the console socket's (``vmws.handlers``). What differs: no text
frame is ever sent (``send`` drops every JSON message the shared machinery would
write), so a refusal is the upgrade then a close code with a short reason, and the
first frame is ``RFB 003.008\\n``. Silent peers are reaped by the hub's protocol pings.

Each viewer gets its own shared RFB connection to the VM's server (``open_screen``).
Once the browser's handshake is done, the VM's bytes go through a ``VMPipe``: read in
chunks straight into frame buffers, each chunk one binary frame, reading paused while
a frame waits to be written; the browser's are parsed (``ViewerStream``) and no
further WebSocket message is read while the VM's socket is over its high-water mark.
Nothing is buffered without bound. When the VM's server closes (the VM stopped), what
was read is delivered, then 1000.
Every path out closes the VM socket (``leave_hub``).

In a cluster, another node's VM is forwarded (``vmws/cluster/screen_forward.py``): this
node authenticates and authorizes the client as for its own VMs, then relays the
owner's ``/ws/vms/{name}/screen`` frame for frame, each write awaited, and closes the
client with the owner's close code (1013 when the owner's connection broke without one).
A session forwarded here by another node (``forwarded_by``) is audited there, not here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import cast

import tornado.websocket
from tornado.concurrent import Future

from vmws import protocol
from vmws.auth import Permission, Principal
from vmws.cluster.relay import RelayUnavailable
from vmws.cluster.screen_forward import ScreenElsewhere, ScreenForward, forward_principal
from vmws.codes import CloseCode
from vmws.config import Config
from vmws.errors import AuthError, NoScreen, VMWSError
from vmws.framing import write_frame
from vmws.handlers import _VMSocket, read_mode, viewer_mode
from vmws.http_request import query_argument
from vmws.hub import Hub
from vmws.limits import TokenBucket
from vmws.presence import ConsoleMode
from vmws.screen.rfb import RFBViolation
from vmws.screen.viewer_stream import GREETING, ViewerStream
from vmws.screen.vm_handshake import handshake_with_vm
from vmws.screen.vm_pipe import VMPipe
from vmws.tickets import Authenticator

__all__ = ["ScreenSocket", "SUBPROTOCOL"]

log = logging.getLogger("vmws.screen")

# What noVNC and websockify call a WebSocket carrying raw RFB bytes.
SUBPROTOCOL = "binary"
# What the VM handshake's reader may buffer (it reads a few small messages).
_HANDSHAKE_LIMIT = 64 * 1024
# Binary frames a browser may send per second, as a multiple of --max-message-rate (a
# pointer move is one frame and noVNC sends up to 60 a second; a paste is two per key),
# bursts twice that. Past it the next frame is read late, never dropped: RFB has no
# message the gateway could drop without the VM's server losing the stream.
SCREEN_RATE_FACTOR = 20
# The browser's side of the RFB handshake (version, security type, ClientInit) must be
# done by then: a browser that upgrades and says nothing would otherwise hold a
# connection to the VM's screen server for as long as it answers pings.
BROWSER_HANDSHAKE_TIMEOUT = 10.0


class ScreenSocket(_VMSocket):
    endpoint = protocol.Endpoint.SCREEN
    permission = Permission.CONSOLE
    mode = ConsoleMode.INTERACTIVE

    def initialize(self, hub: Hub, auth: Authenticator, config: Config) -> None:
        super().initialize(hub, auth, config)
        self._viewer: ViewerStream | None = None
        self._vm_writer: asyncio.StreamWriter | None = None
        self._vm_reader: asyncio.StreamReader | None = None
        self._pipe: VMPipe | None = None  # the VM's socket, once relaying
        self._relay: asyncio.Task[None] | None = None
        self._forward: ScreenForward | None = None  # another node's VM: its owner's screen
        self._handshake_deadline: asyncio.TimerHandle | None = None
        self.forwarded_by: str | None = None  # the node that forwarded this session here
        # In place of the JSON sockets' bucket (whose excess is dropped): frames wait instead.
        rate = SCREEN_RATE_FACTOR * config.max_message_rate
        self._rate = TokenBucket(rate, 2 * rate, self.last_seen)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    @property
    def view_only(self) -> bool:
        return self.mode is ConsoleMode.WATCH

    def read_query(self) -> None:
        query_argument(self.request, "token")  # UndecodableQuery before anything else
        self.mode = read_mode(self.request) or self.mode

    def authorize(self, principal: Principal, name: str) -> None:
        self.mode = viewer_mode(principal, name, self.mode)
        self.forwarded_by = principal.via

    def refusal_reason(self, exc: VMWSError, code: CloseCode) -> str:
        # No `error` message precedes the close here: a NoScreen's message (written by
        # vmws, never quoting the VM's name) is the reason, so the viewer sees why.
        return exc.message if isinstance(exc, NoScreen) else super().refusal_reason(exc, code)

    def send(self, text: str, *, droppable: bool = False) -> None:
        """Never a text frame on this socket: the JSON the shared machinery writes (the
        connection message, heartbeats, an error before a close) is dropped."""

    async def join_hub(self, name: str) -> None:
        """Open the VM's screen, do the gateway's side of its handshake, greet the browser
        (or forward the socket to the node that owns the VM)."""
        try:
            sock = await self.hub.backend.open_screen(name)
        except ScreenElsewhere as owner:
            await self._forward_to(owner, name)
            return
        try:
            self._vm_reader, self._vm_writer = await asyncio.open_connection(sock=sock, limit=_HANDSHAKE_LIMIT)
        except BaseException:
            sock.close()
            raise
        server_init = await handshake_with_vm(self._vm_reader, self._vm_writer)
        self._check_still_here()
        self._viewer = ViewerStream(server_init.encode(), view_only=self.view_only)
        self._handshake_deadline = asyncio.get_running_loop().call_later(
            BROWSER_HANDSHAKE_TIMEOUT, self._handshake_overdue
        )
        await self._to_browser(GREETING)

    def _handshake_overdue(self) -> None:
        self._handshake_deadline = None
        if self._viewer is not None and not self._viewer.relaying and not self.closing:
            log.info("screen of %s: %s did not finish the RFB handshake", self.vm, self.session_id)
            self.close(
                CloseCode.POLICY_VIOLATION, f"RFB: handshake not completed within {BROWSER_HANDSHAKE_TIMEOUT:g} s"
            )

    async def _forward_to(self, owner: ScreenElsewhere, name: str) -> None:
        """Relay the owner's screen: a one-use ticket for this user, this VM and this mode."""
        assert self.principal is not None
        if self.forwarded_by is not None:  # ownership moved while it was forwarded: no second hop
            raise RelayUnavailable(f"VM {name!r} is not on this node any more: try again later")
        tickets = getattr(self.auth, "cluster_tickets", None)
        if tickets is None:  # a cluster backend always comes with cluster tickets
            raise NoScreen(f"this VM's screen is served only by its own node {owner.node!r}: connect to that node")
        here = self.hub.oversight.audit.node or "?"  # this node's cluster name, set at start
        narrowed = forward_principal(self.principal, name, view_only=self.view_only, via=here)
        try:
            ticket = await tickets.issue(narrowed)
        except AuthError as exc:  # Redis down, or this user's tickets at their cap
            raise RelayUnavailable(f"cannot forward to the screen's node {owner.node!r}: {exc.message}") from None
        self._check_still_here()
        self._forward = await ScreenForward.open(owner, name, ticket, view_only=self.view_only)
        log.info(
            "screen of %s (%s) forwarded to its node %s", name, self.session_id, owner.node, extra=self._log_context()
        )
        self._check_still_here()  # gone meanwhile: leave_hub closes the forward
        self._relay = asyncio.create_task(self._relay_from_owner(self._forward))

    async def _relay_from_owner(self, forward: ScreenForward) -> None:
        """The owner's binary frames to the browser, each write awaited, until the owner
        closes: then the owner's close code, mirrored."""
        try:
            while not self.closing:
                message = await forward.receive()
                if message is None:
                    self.close(*forward.close_to_mirror())
                    return
                if isinstance(message, bytes):  # the owner sends no text frame either
                    await self._to_browser(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("screen forward of %s failed (%s)", self.vm, self.session_id, extra=self._log_context())
            self.close(CloseCode.INTERNAL_ERROR, "internal error")

    def leave_hub(self) -> None:
        if self._handshake_deadline is not None:
            self._handshake_deadline.cancel()
            self._handshake_deadline = None
        if self._relay is not None:
            self._relay.cancel()
            self._relay = None
        if self._forward is not None:
            self._forward.close()
            self._forward = None
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._vm_writer is not None:
            self._vm_writer.close()
            self._vm_writer = None

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:  # type: ignore[override]
        # Tornado reads the next frame only once the awaitable returned is done: that
        # is the backpressure from the VM's socket to the browser.
        self.last_seen = now = asyncio.get_running_loop().time()
        self.bytes_in += len(message)
        if self.principal is None or self.closing:
            return None
        if (wait := self._rate.delay(now)) > 0:
            return self._later(wait, message)
        return self._take(message)

    async def _later(self, wait: float, message: str | bytes) -> None:
        """A frame over the rate, taken once its turn comes (no frame is read meanwhile)."""
        await asyncio.sleep(wait)
        if not self.closing and (pending := self._take(message)) is not None:
            await pending

    def _take(self, message: str | bytes) -> Awaitable[None] | None:
        if self._forward is not None:  # the owner parses and filters the RFB stream
            return self._forward.send(message)
        if self._viewer is None:
            return None
        if isinstance(message, str):
            self.close(CloseCode.POLICY_VIOLATION, "text frames are not accepted: RFB goes in binary frames")
            return None
        try:
            answer, to_vm = self._viewer.feed(message)
        except RFBViolation as exc:
            log.info("screen of %s: %s broke RFB: %s", self.vm, self.session_id, exc, extra=self._log_context())
            self.close(CloseCode.POLICY_VIOLATION, f"RFB: {exc}")
            return None
        if not answer and not to_vm:
            return None
        if self._pipe is not None and not answer:  # relaying: no task, no await unless the VM's socket is full
            return self._pipe.write(to_vm)
        return self._pass_on(answer, to_vm)

    async def _pass_on(self, answer: bytes, to_vm: bytes) -> None:
        if answer:
            await self._to_browser(answer)
        if to_vm and self._pipe is not None:
            if (writable := self._pipe.write(to_vm)) is not None:
                await writable
        elif to_vm and self._vm_writer is not None:
            self._vm_writer.write(to_vm)
            try:
                await self._vm_writer.drain()
            except ConnectionError:
                return  # the VM's side ended: the relay sees it and closes
        if self._pipe is None and self._viewer is not None and self._viewer.relaying and not self.closing:
            # Only now: the VM's bytes must follow the ServerInit just sent, never precede it.
            assert self._vm_reader is not None and self._vm_writer is not None
            self._pipe = await VMPipe.take_over(self._vm_reader, self._vm_writer, self._send_frame, self._vm_ended)
            if self.closing:  # gone while the pipe was made: leave_hub ran before it existed
                self._pipe.close()

    async def _to_browser(self, data: bytes) -> None:
        try:
            await self.write_message(data, binary=True)
        except tornado.websocket.WebSocketClosedError:
            return
        self.bytes_out += len(data)

    def _send_frame(self, frame: memoryview, payload: int) -> Future[None] | None:
        """A whole binary frame (``VMPipe``'s) to the browser, by reference."""
        if self.closing or self.ws_connection is None:
            return None
        self.bytes_out += payload
        # write_frame passes each piece to Tornado's stream, which takes memoryviews too
        return write_frame(self.ws_connection, (cast(bytes, frame),))

    def _vm_ended(self, error: BaseException | None) -> None:
        """The VM's side of the pipe closed (None) or the relay failed."""
        if self.closing:
            return
        if error is None:
            self.close(CloseCode.NORMAL_CLOSURE, "the VM's screen closed")
            return
        log.error("screen relay of %s failed (%s)", self.vm, self.session_id, exc_info=error, extra=self._log_context())
        self.close(CloseCode.INTERNAL_ERROR, "internal error")
