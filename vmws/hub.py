"""Per-VM channels: watchers, the shared metrics sampler, commands, consoles, heartbeats.

The hub sits between connected peers and the backend. It never knows which backend
it talks to, nor that peers are Tornado sockets. Every broadcast (status, metrics,
console output) is serialised once and handed to each recipient.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from vmws import protocol
from vmws.backend import Action, Backend, MetricsSample, VMInfo, VMStatus
from vmws.codes import CloseCode, ErrorCode
from vmws.config import Config
from vmws.console_channel import ConsoleChannel, OutputListener
from vmws.errors import AuthError, VMNotRunning, VMWSError
from vmws.expiries import Expiries
from vmws.keylocks import KeyedLocks
from vmws.limits import ConnectionCounter
from vmws.logs import log_context
from vmws.oversight import Oversight
from vmws.peer import Peer
from vmws.scrollback import Scrollback

__all__ = ["Hub", "CommandRelay", "ConsoleSeats", "new_epoch"]

log = logging.getLogger("vmws.hub")


# Runs a command on another node when ``vm`` is owned there (True), else declines (False).
CommandRelay = Callable[[str, protocol.Command, Peer, str], Awaitable[bool]]


class ConsoleSeats(Protocol):
    """Console seats counted across a cluster (``vmws/cluster/viewer_caps.py``)."""

    async def take(self, vm: str, session: str, user: str, cap: int, per_user: int) -> str | None:
        """None when seated, else which cap is full: ``"console"`` or ``"user"``."""

    def give_back(self, vm: str, session: str, user: str) -> None: ...


def new_epoch() -> str:
    """A console history's epoch: random, so a restarted process never reuses one."""
    return uuid.uuid4().hex[:16]


def _command_context(vm: str, peer: Peer, request_id: str) -> dict[str, str]:
    return log_context(vm=vm, user=peer.user, session=peer.session_id, request_id=request_id)


class Hub:
    def __init__(self, backend: Backend, config: Config, now: Callable[[], float]) -> None:
        self.backend = backend
        self.config = config
        self.now = now  # wall-clock seconds for message timestamps
        self.peers: set[Peer] = set()
        self._watchers: dict[str, set[Peer]] = defaultdict(set)
        self._samplers: dict[str, asyncio.Task[None]] = {}
        # Commands: one at a time per VM; how many each (VM, user) has queued or running;
        # the tasks of each peer still waiting for their turn (dropped if it leaves).
        self._command_locks = KeyedLocks()
        self._outstanding: Counter[tuple[str, str]] = Counter()
        self._waiting: dict[Peer, set[asyncio.Task[Any]]] = {}
        self._dropping: set[asyncio.Task[Any]] = set()
        self._consoles: dict[str, ConsoleChannel] = {}
        self._console_locks = KeyedLocks()
        self._scrollbacks: dict[str, Scrollback] = {}
        # The epoch of each console's offsets: one per VM for the life of the process
        # (or the owner node's, for a console relayed from it).
        self._epochs: dict[str, str] = {}
        # Set by a cluster node (vmws/cluster): its owner publishes console output, and
        # commands on VMs owned by another node go there.
        self.console_output: OutputListener | None = None
        self.command_relay: CommandRelay | None = None
        # Set by a cluster node: the viewer caps then hold across every node.
        self.console_seats: ConsoleSeats | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._heartbeat_count = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.user_connections = ConnectionCounter(config.max_connections_per_user)
        self.expiries = Expiries()  # every connection's token expiry, on one timer
        self.oversight = Oversight(config, self, now)  # audit events and Prometheus counters
        # Told of every sample taken for watchers (the fleet's history keeps them).
        self.sample_listeners: list[Callable[[str, MetricsSample], None]] = []

    async def start(self) -> None:
        self._unsubscribe = self.backend.subscribe(self._on_status)
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")

    async def close(self, reason: str = "server shutting down", code: CloseCode = CloseCode.GOING_AWAY) -> None:
        """Tell every client ``code`` (1001; 1012 from a draining cluster node), stop every
        task. The backend is closed by the caller."""
        for peer in list(self.peers):
            peer.close(code, reason)
        if self._unsubscribe:
            self._unsubscribe()
        tasks: list[asyncio.Task[None]] = list(self._samplers.values())
        if self._heartbeat:
            tasks.append(self._heartbeat)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in list(self._consoles.values())), return_exceptions=True)

    # Peers

    def register(self, peer: Peer) -> None:
        self.peers.add(peer)

    def unregister(self, peer: Peer) -> None:
        """Forget ``peer``. It has already left what it joined (its VM's watchers, or
        its console channel) itself: nothing here looks through every VM."""
        self.peers.discard(peer)
        # Its commands that have not started go: nobody is there for the answer, and
        # they would hold up everyone else's (the one running completes, logged).
        for task in self._waiting.pop(peer, ()):
            self._dropping.add(task)
            task.cancel()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, holding a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Monitoring

    async def add_watcher(self, vm: str, peer: Peer) -> None:
        """Send the current status and a first metrics sample, then keep ``peer`` posted."""
        info = await self.backend.get(vm)
        sample = await self.backend.sample(vm)
        self._sampled(vm, sample)
        peer.send(protocol.status_message(info, self.now()))
        peer.send(protocol.metrics_message(sample, self.now()))
        self._watchers[vm].add(peer)
        if vm not in self._samplers:
            self._samplers[vm] = asyncio.create_task(self._sample_loop(vm), name=f"sampler:{vm}")

    def remove_watcher(self, vm: str, peer: Peer) -> None:
        watchers = self._watchers.get(vm)
        if watchers is None:
            return
        watchers.discard(peer)
        if not watchers:
            del self._watchers[vm]
            sampler = self._samplers.pop(vm, None)
            if sampler:
                sampler.cancel()

    def has_sockets(self, vm: str) -> bool:
        """Whether any socket on this node watches ``vm`` or has its console open."""
        return bool(self._watchers.get(vm)) or vm in self._consoles

    def is_watched(self, vm: str) -> bool:
        """Whether the hub samples ``vm`` itself (at the metrics interval) for watchers."""
        return vm in self._samplers

    def _sampled(self, vm: str, sample: MetricsSample) -> None:
        for listener in self.sample_listeners:
            listener(vm, sample)

    def _on_status(self, info: VMInfo) -> None:
        watchers = self._watchers.get(info.name)
        if not watchers:
            return
        message = protocol.status_message(info, self.now())
        for peer in list(watchers):
            peer.send(message)

    async def _sample_loop(self, vm: str) -> None:
        interval = self.config.metrics_interval
        while True:
            await asyncio.sleep(interval)
            try:
                sample = await self.backend.sample(vm)
            except VMWSError as exc:
                log.warning("metrics of %s unavailable: %s", vm, exc.message, extra=log_context(vm=vm))
                continue
            self._sampled(vm, sample)
            message = protocol.metrics_message(sample, self.now())
            for peer in list(self._watchers.get(vm, ())):
                peer.send(message, droppable=True)

    # Commands

    async def run_command(self, vm: str, command: protocol.Command, peer: Peer) -> None:
        """Run one command (one at a time per VM, arrival order) and answer its issuer.

        A user has at most ``max_commands_per_user`` commands per VM queued or running;
        the excess is refused with an ``error`` echoing its ``requestId``, so nobody is
        ever queued behind more than that many of one user's commands.
        """
        request_id = command.request_id or f"srv-{uuid.uuid4().hex[:12]}"
        if self.command_relay is not None and await self._relayed(vm, command, peer, request_id):
            return  # its owner node ran it (its per-user cap and its turn) and answered
        action = command.action.value
        key = (vm, peer.user)
        limit = self.config.max_commands_per_user
        if self._outstanding[key] >= limit:
            self.oversight.command(vm, peer, command, request_id, "refused", time.monotonic())
            log.info(
                "command %s on %s by %s (%s) refused: %d outstanding",
                action,
                vm,
                peer.user,
                request_id,
                limit,
                extra=_command_context(vm, peer, request_id),
            )
            peer.send(
                protocol.error_message(
                    ErrorCode.INVALID_COMMAND,
                    f"too many outstanding commands: at most {limit} per user per VM, the running one included; "
                    f"'{action}' refused",
                    self.now(),
                    request_id=request_id,
                )
            )
            return
        self._outstanding[key] += 1
        try:
            # A forced stop is the way out of a graceful stop that hangs: it must not queue
            # behind it (the backend lets it cut in, as `virsh destroy` does).
            if command.action is Action.STOP and command.force:
                await self._perform(vm, command, peer, request_id)
            else:
                await self._run_in_turn(vm, command, peer, request_id)
        finally:
            self._outstanding[key] -= 1
            if self._outstanding[key] <= 0:
                del self._outstanding[key]

    async def _relayed(self, vm: str, command: protocol.Command, peer: Peer, request_id: str) -> bool:
        """Hand ``command`` to the cluster's relay; if ``peer`` leaves meanwhile it is
        cancelled (the relay tells the owner, which drops it unless it has started)."""
        assert self.command_relay is not None
        task = asyncio.current_task()
        assert task is not None
        self._waiting.setdefault(peer, set()).add(task)
        try:
            return await self.command_relay(vm, command, peer, request_id)
        except asyncio.CancelledError:
            if task not in self._dropping:
                raise
            self._dropping.discard(task)
            return True
        finally:
            self._forget_waiting(peer, task)

    async def _run_in_turn(self, vm: str, command: protocol.Command, peer: Peer, request_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._waiting.setdefault(peer, set()).add(task)
        try:
            async with self._command_locks.hold(vm):
                self._forget_waiting(peer, task)  # started: it runs to the end
                await self._perform(vm, command, peer, request_id)
        except asyncio.CancelledError:
            if task not in self._dropping:
                raise
            self._dropping.discard(task)
            self.oversight.command(vm, peer, command, request_id, "dropped", time.monotonic())
            log.info(
                "command %s on %s by %s (%s) dropped: its sender left before it started",
                command.action.value,
                vm,
                peer.user,
                request_id,
                extra=_command_context(vm, peer, request_id),
            )
        finally:
            self._forget_waiting(peer, task)

    def _forget_waiting(self, peer: Peer, task: asyncio.Task[Any]) -> None:
        waiting = self._waiting.get(peer)
        if waiting is not None:
            waiting.discard(task)
            if not waiting:
                del self._waiting[peer]

    async def _perform(self, vm: str, command: protocol.Command, peer: Peer, request_id: str) -> None:
        started = time.monotonic()
        outcome = await self._perform_and_answer(vm, command, peer, request_id)
        self.oversight.command(vm, peer, command, request_id, outcome, started)

    async def _perform_and_answer(self, vm: str, command: protocol.Command, peer: Peer, request_id: str) -> str:
        """Run the command, answer its issuer; the outcome: success, failed, timeout or error."""
        action = command.action.value
        task = asyncio.ensure_future(self.backend.perform(vm, command.action, force=command.force))
        done, _ = await asyncio.wait({task}, timeout=self.config.command_timeout)
        if not done:
            message = protocol.response_message(
                request_id,
                False,
                f"Command '{action}' timed out after {self.config.command_timeout:g}s",
                self.now(),
                code=ErrorCode.UNKNOWN_ERROR,
                action=action,
            )
            peer.send(message)
            log.warning(
                "command %s on %s by %s (%s) timed out",
                action,
                vm,
                peer.user,
                request_id,
                extra=_command_context(vm, peer, request_id),
            )
            # Keep the turn until it really ends, so commands never overlap.
            await asyncio.wait({task})
            return "timeout"
        try:
            info = task.result()
        except VMWSError as exc:
            log.info(
                "command %s on %s by %s (%s) failed: %s",
                action,
                vm,
                peer.user,
                request_id,
                exc.message,
                extra=_command_context(vm, peer, request_id),
            )
            peer.send(
                protocol.response_message(
                    request_id,
                    False,
                    exc.message,
                    self.now(),
                    code=exc.code,
                    action=action,
                )
            )
            return "failed"
        except Exception:
            log.exception(
                "command %s on %s (%s) raised", action, vm, request_id, extra=_command_context(vm, peer, request_id)
            )
            peer.send(
                protocol.response_message(
                    request_id,
                    False,
                    f"Command '{action}' failed: internal error",
                    self.now(),
                    code=ErrorCode.UNKNOWN_ERROR,
                    action=action,
                )
            )
            return "error"
        log.info(
            "command %s on %s by %s (%s) succeeded: %s",
            action,
            vm,
            peer.user,
            request_id,
            info.status.value,
            extra=_command_context(vm, peer, request_id),
        )
        peer.send(
            protocol.response_message(
                request_id,
                True,
                f"Command '{action}' completed successfully",
                self.now(),
                action=action,
                status=info.status.value,
            )
        )
        return "success"

    # Consoles

    async def console(self, vm: str) -> ConsoleChannel:
        """The VM's shared console channel, opened on first use (raises backend errors)."""
        channel = self._consoles.get(vm)
        if channel is not None and not channel.finished:
            # An open channel outlives a pause (its viewers stay), but a paused VM takes
            # no new reader, as the backends refuse a new stream then.
            info = await self.backend.get(vm)
            if info.status is VMStatus.PAUSED:
                raise VMNotRunning(f"VM {vm!r} is paused: its console takes no new viewers until it resumes")
            return channel
        # Look the VM up before keeping anything under its name: a refused name leaves
        # no lock behind (2,000 long names once kept 40 MiB for good).
        await self.backend.get(vm)
        async with self._console_locks.hold(vm):
            channel = self._consoles.get(vm)
            if channel is None or channel.finished:
                stream = await self.backend.open_console(vm)
                scrollback = self._scrollbacks.setdefault(vm, Scrollback(self.config.scrollback_bytes))
                channel = ConsoleChannel(
                    vm,
                    stream,
                    scrollback,
                    self.now,
                    self._console_finished,
                    epoch=self._console_epoch(vm, stream, scrollback),
                    on_output=self.console_output,
                    history=getattr(stream, "history", b""),
                )
                self._consoles[vm] = channel
            return channel

    def held_console_output(self, vm: str) -> list[tuple[float, bytes]]:
        """The VM's held console output as ``(arrival time, bytes)`` chunks (none if
        its console was never opened here)."""
        scrollback = self._scrollbacks.get(vm)
        return [] if scrollback is None else scrollback.timed_chunks()

    def _console_epoch(self, vm: str, stream: object, scrollback: Scrollback) -> str:
        """The epoch of ``vm``'s console offsets. A console relayed from its owner node
        (``relayed_from``: the offset of its ``history`` and the epoch) counts in the
        owner's offsets."""
        relayed: tuple[int, str] | None = getattr(stream, "relayed_from", None)
        if relayed is None:
            return self._epochs.setdefault(vm, new_epoch())
        offset, epoch = relayed
        if self._epochs.get(vm) != epoch or scrollback.end != offset:
            scrollback.restart_at(offset)
        self._epochs[vm] = epoch
        return epoch

    def open_console_channel(self, vm: str) -> ConsoleChannel | None:
        """``vm``'s console channel if it is open (never opens one)."""
        channel = self._consoles.get(vm)
        return None if channel is None or channel.finished else channel

    def console_end(self, vm: str) -> int:
        """The offset just past ``vm``'s newest console byte read so far."""
        scrollback = self._scrollbacks.get(vm)
        return 0 if scrollback is None else scrollback.end

    def lost(
        self, vm: str, code: ErrorCode, message: str, close_code: CloseCode, *, console_only: bool = False
    ) -> None:
        """Close every socket of ``vm`` on this node with ``message`` (its owner is gone),
        or with ``console_only`` only its console's viewers (the console's copy ended)."""
        error = protocol.error_message(code, message, self.now())
        peers = [] if console_only else list(self._watchers.get(vm, ()))
        channel = self._consoles.get(vm)
        if channel is not None:
            peers += list(channel.viewers)
        for peer in peers:
            peer.send(error)
            peer.close(close_code, "try again later")

    def admit_viewer(self, channel: ConsoleChannel, user: str) -> None:
        """Raise the ``AuthError`` (close 4029) that keeps ``user`` off ``channel``, if any,
        counting this node's viewers (in a cluster, ``take_console_seat`` counts them all).

        The per-user cap is below the console's, so one user cannot take every seat.
        """
        if channel.viewer_count() >= self.config.max_console_viewers:
            raise self._console_full("console")
        if channel.viewer_count(user) >= self.config.max_console_viewers_per_user:
            raise self._console_full("user")

    async def take_console_seat(self, vm: str, peer: Peer) -> bool:
        """In a cluster, seat ``peer`` on ``vm``'s console counting every node's viewers
        (True: a seat to give back), or raise the same ``AuthError`` as ``admit_viewer``."""
        if self.console_seats is None:
            return False
        full = await self.console_seats.take(
            vm,
            peer.session_id,
            peer.user,
            self.config.max_console_viewers,
            self.config.max_console_viewers_per_user,
        )
        if full is not None:
            raise self._console_full(full)
        return True

    def give_back_console_seat(self, vm: str, peer: Peer) -> None:
        if self.console_seats is not None:
            self.console_seats.give_back(vm, peer.session_id, peer.user)

    def _console_full(self, which: str) -> AuthError:
        if which == "console":
            limit = self.config.max_console_viewers
            return AuthError(f"too many viewers on this console (limit {limit})", CloseCode.TOO_MANY)
        per_user = self.config.max_console_viewers_per_user
        return AuthError(
            f"too many console viewers for this user on this VM (limit {per_user} per user)", CloseCode.TOO_MANY
        )

    def _console_finished(self, channel: ConsoleChannel) -> None:
        if self._consoles.get(channel.vm) is channel:
            del self._consoles[channel.vm]

    # Heartbeats

    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self._heartbeat_count += 1
            deadline = loop.time() - 2 * interval
            message = protocol.heartbeat_message({"seq": self._heartbeat_count, "interval": interval}, self.now())
            for peer in list(self.peers):
                if peer.last_seen < deadline:
                    log.info(
                        "closing %s (%s): silent for over %gs",
                        peer.session_id,
                        peer.user,
                        2 * interval,
                        extra=log_context(user=peer.user, session=peer.session_id),
                    )
                    peer.close(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
                    continue
                peer.ping()
                peer.send(message, droppable=True)
