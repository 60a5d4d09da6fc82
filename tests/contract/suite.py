"""The backend contract: one abstract test class every ``Backend`` must pass.

Shape taken from Tornado's ``abstract_base_test`` and fakeredis: ``BackendContract``
is not collected itself (its name does not start with ``Test``); each backend has a
``tests/contract/test_<backend>.py`` with ``class Test<Backend>Contract(BackendContract)``
that provides these fixtures:

``backend``  (async, required)
    A started ``Backend`` (``await backend.start()`` done), closed after the test.
``running_vm``  (sync or async, required)
    Name of a VM that is ``running`` when the test begins, whose serial console
    reaches a getty login prompt and accepts ``credentials``, and whose ``hostname``
    command prints this name. Reset it here if an earlier test may have left it
    stopped, paused or logged in.
``stopped_vm``  (sync or async, required)
    Name of a VM that is ``stopped`` when the test begins (reset it here if needed).
``error_vm``  (optional; default ``None``)
    Name of a VM in status ``error``; ``None`` when the backend cannot put one there
    on demand, which skips the ``error`` column of the action table.
``hung_stop_vm``  (sync or async, optional; default ``None``)
    Name of a ``running`` VM whose next graceful ``stop`` the guest ignores for longer
    than ``timeouts.action`` (the backend's own stop timeout set longer than that);
    ``None`` when the backend cannot make a guest ignore the power button, which skips
    the forced-stop cut-in test.
``screens``  (optional; default ``True``)
    ``False`` for a backend without graphical screens (libvirt's ``test:///``): every
    ``open_screen`` of a running VM is then ``NoScreen``, and the screen cases that need
    a picture skip. With screens, ``running_vm``'s screen shows an 80-column text console
    with a login on it (tty1) that echoes what is typed.
``credentials``  (optional; default ``("admin", "admin")``)
``timeouts``  (optional; default ``ContractTimeouts()``)
    Real-time limits: ``action`` for one ``perform``, ``boot`` from power-on to the
    login prompt, ``console`` for a command's answer. A QEMU guest under software
    emulation wants ``boot`` of 60 s or more; the simulator, sped up, a few seconds.

``perform`` is held to ``vmws.backend``'s rule, which real QEMU guests set: an action
is done once it has taken effect at the hypervisor — ``start`` when the VM runs,
``restart`` at the guest's reset — and the guest boots on to its login prompt after.
Network and disk counters are cumulative since the VM was started: a restart keeps
counting.

Everything runs in real time on the running event loop (asyncio waits with
timeouts, never a virtual clock), so the same tests pass against real guests. They
assert only what a Linux serial getty shows anywhere — ``login:``, ``Password:``, a
prompt ending in ``$ `` or ``# ``, ``not found`` for an unknown command — not the
simulator's exact banner. Console tests run when ``Capability.CONSOLE`` is in
``backend.capabilities``, metrics tests with ``METRICS``, pause and suspend rows with
``PAUSE`` / ``SUSPEND``.

Capabilities are not taken on trust: ``CapabilityContract`` (the base of
``BackendContract``) exercises each one a backend declares (the console opens and
answers, the metrics of a running VM change, suspend / pause and resume perform) and
checks that each it does not declare is refused with the error ``vmws.backend.Capability``
documents (``NoConsole``, close 4005, for a console; ``CommandFailed`` otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from tests.rfb_client import BYTES_PER_PIXEL, KEY_BACKSPACE, KEY_RETURN, RFBClient, StreamTransport
from vmws.backend import Action, Backend, Capability, ConsoleStream, MetricsSample, VMInfo, VMStatus
from vmws.errors import CommandFailed, NoConsole, NoScreen, VMNotFound, VMNotRunning

__all__ = [
    "BackendContract",
    "CapabilityContract",
    "ContractTimeouts",
    "ConsoleReader",
    "EXPECTED",
    "changed_columns",
    "type_keys",
    "wait_for_change",
]

# A shell prompt, and whatever terminal queries its line editor sends after it (busybox
# asks for the cursor position, ESC [ 6 n, after every prompt).
PROMPT = rb"[$#] (?:\x1b\[[0-9;?]*[A-Za-z])*$"
LOGIN = rb"login: ?$"
PASSWORD = rb"[Pp]assword: ?$"

_R, _S, _P, _U, _E = VMStatus.RUNNING, VMStatus.STOPPED, VMStatus.PAUSED, VMStatus.SUSPENDED, VMStatus.ERROR
# The action table as the protocol promises it (docs/protocol.md): the status after the
# action, or None for VMNotRunning. An independent copy of ``vmws.backend.ACTIONS`` on
# purpose: the backends decide from ACTIONS, and this is what checks them; deriving it
# from ACTIONS would pass whatever ACTIONS said. ``tests/backends/test_action_table.py``
# holds the two copies together cell by cell.
EXPECTED: dict[tuple[Action, VMStatus], VMStatus | None] = {
    (Action.START, _R): _R, (Action.START, _S): _R, (Action.START, _P): _R,
    (Action.START, _U): _R, (Action.START, _E): _R,
    (Action.STOP, _R): _S, (Action.STOP, _S): _S, (Action.STOP, _P): _S,
    (Action.STOP, _U): _S, (Action.STOP, _E): _S,
    (Action.RESTART, _R): _R, (Action.RESTART, _S): None, (Action.RESTART, _P): None,
    (Action.RESTART, _U): None, (Action.RESTART, _E): None,
    (Action.SUSPEND, _R): _U, (Action.SUSPEND, _S): None, (Action.SUSPEND, _P): _U,
    (Action.SUSPEND, _U): _U, (Action.SUSPEND, _E): None,
    (Action.RESUME, _R): _R, (Action.RESUME, _S): None, (Action.RESUME, _P): _R,
    (Action.RESUME, _U): _R, (Action.RESUME, _E): None,
    (Action.PAUSE, _R): _P, (Action.PAUSE, _S): None, (Action.PAUSE, _P): _P,
    (Action.PAUSE, _U): None, (Action.PAUSE, _E): None,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ContractTimeouts:
    action: float = 30.0
    boot: float = 120.0
    console: float = 15.0


class ConsoleReader:
    """pexpect for a ``ConsoleStream``: a task reads everything; ``expect`` searches it.

    Reading in one background task means no ``read()`` is ever cancelled by a timeout.
    """

    def __init__(self, stream: ConsoleStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.pos = 0  # where the next expect starts searching
        self.eof = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            chunk = await self.stream.read()
            if not chunk:
                self.eof = True
                self._changed.set()
                return
            self.buffer += chunk
            self._changed.set()

    async def send(self, data: bytes) -> None:
        await self.stream.write(data)

    async def expect(self, pattern: bytes, timeout: float) -> re.Match[bytes]:
        regex = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            match = regex.search(self.buffer, self.pos)
            if match:
                self.pos = match.end()
                return match
            remaining = deadline - loop.time()
            if self.eof or remaining <= 0:
                why = "eof" if self.eof else f"{timeout} s passed"
                raise AssertionError(f"{why} before {pattern!r}; console ends with {self.buffer[-400:]!r}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def expect_eof(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            raise AssertionError(f"no eof within {timeout} s; console ends with {self.buffer[-400:]!r}") from None

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self.stream.close()


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def _assert_stopped(backend: Backend, info: VMInfo) -> None:
    """``info``, what a stop returned, and the backend agree: the VM is stopped."""
    assert info.status is VMStatus.STOPPED
    assert (await backend.get(info.name)).status is VMStatus.STOPPED


def _counters(sample: MetricsSample) -> tuple[int, int, int, int]:
    return (sample.net_rx_bytes, sample.net_tx_bytes, sample.disk_read_bytes, sample.disk_write_bytes)


def _readings(sample: MetricsSample) -> tuple[float, int, int, int, int, int]:
    return (sample.cpu_utilization, sample.memory_used, *_counters(sample))


def _check_sample(sample: MetricsSample) -> None:
    assert 0.0 <= sample.cpu_utilization <= 100.0
    assert sample.memory_total > 0
    assert 0 <= sample.memory_used <= sample.memory_total
    for counter in (sample.net_rx_bytes, sample.net_tx_bytes, sample.disk_read_bytes, sample.disk_write_bytes):
        assert isinstance(counter, int) and counter >= 0


class CapabilityContract:
    """A backend does what its ``capabilities`` declare, and refuses what they do not.

    The part of the contract a backend declaring fewer capabilities can run alone
    (the fixtures are those of ``BackendContract``); the helpers every test uses.
    """

    @pytest.fixture
    def error_vm(self) -> str | None:
        return None

    @pytest.fixture
    def hung_stop_vm(self) -> str | None:
        return None

    @pytest.fixture
    def credentials(self) -> tuple[str, str]:
        return ("admin", "admin")

    @pytest.fixture
    def timeouts(self) -> ContractTimeouts:
        return ContractTimeouts()

    # Helpers

    @staticmethod
    def require(backend: Backend, *needed: Capability) -> None:
        missing = [c.value for c in needed if c not in backend.capabilities]
        if missing:
            pytest.skip(f"backend lacks capability {', '.join(missing)}")

    async def perform(self, backend: Backend, name: str, action: Action, timeouts: ContractTimeouts) -> VMInfo:
        limit = timeouts.boot if action in (Action.START, Action.RESTART) else timeouts.action
        return await asyncio.wait_for(backend.perform(name, action), limit)

    async def bring_to(
        self,
        backend: Backend,
        status: VMStatus,
        running_vm: str,
        stopped_vm: str,
        error_vm: str | None,
        timeouts: ContractTimeouts,
    ) -> str:
        """A VM now in ``status``, reached through actions where it takes some."""
        if status is VMStatus.RUNNING:
            return running_vm
        if status is VMStatus.STOPPED:
            return stopped_vm
        if status is VMStatus.ERROR:
            if error_vm is None:
                pytest.skip("this backend cannot put a VM in error on demand")
            return error_vm
        action = Action.PAUSE if status is VMStatus.PAUSED else Action.SUSPEND
        self.require(backend, Capability(action.value))
        info = await self.perform(backend, running_vm, action, timeouts)
        assert info.status is status
        return running_vm

    @contextlib.asynccontextmanager
    async def console(
        self, backend: Backend, name: str, login: tuple[tuple[str, str], ContractTimeouts] | None = None
    ) -> AsyncIterator[ConsoleReader]:
        """A reader on ``name``'s console, logged in first when ``login`` is given."""
        self.require(backend, Capability.CONSOLE)
        reader = ConsoleReader(await backend.open_console(name))
        try:
            if login is not None:
                await self.login(reader, *login)
            yield reader
        finally:
            await reader.close()

    async def login(self, reader: ConsoleReader, credentials: tuple[str, str], timeouts: ContractTimeouts) -> None:
        """From wherever the console is (booting, at login, in a shell) to a shell prompt."""
        user, password = credentials
        await reader.send(b"\n")
        match = await reader.expect(LOGIN + b"|" + PROMPT, timeouts.boot)
        if not match.group(0).rstrip().endswith(b":"):
            await reader.send(b"exit\n")
            await reader.expect(LOGIN, timeouts.console)
        await reader.send(user.encode() + b"\n")
        await reader.expect(re.escape(user.encode()) + rb"\r?\n", timeouts.console)  # the name is echoed
        await reader.expect(PASSWORD, timeouts.console)
        after_prompt = reader.pos
        await reader.send(password.encode() + b"\n")
        await reader.expect(PROMPT, timeouts.console)
        typed_line = reader.buffer[after_prompt:].split(b"\n", 1)[0]
        assert password.encode() not in typed_line, "the password was echoed"

    async def run(self, reader: ConsoleReader, command: str, timeouts: ContractTimeouts) -> bytes:
        """Type ``command`` at a shell prompt; what it printed, between echo and prompt."""
        await reader.send(command.encode() + b"\n")
        await reader.expect(re.escape(command.encode()) + rb"\r?\n", timeouts.console)
        start = reader.pos
        match = await reader.expect(PROMPT, timeouts.console)
        printed = reader.buffer[start : match.start()]
        return printed[: printed.rfind(b"\n") + 1]  # the prompt's own line is not output

    # Capabilities: declared means done, undeclared means refused (vmws.backend.Capability)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("capability", list(Capability), ids=lambda c: c.value)
    async def test_capability_is_what_the_backend_does(
        self, backend: Backend, running_vm: str, timeouts: ContractTimeouts, capability: Capability
    ) -> None:
        if capability in backend.capabilities:
            await self.exercise(backend, capability, running_vm, timeouts)
        else:
            await self.refused(backend, capability, running_vm)

    async def exercise(self, backend: Backend, capability: Capability, vm: str, timeouts: ContractTimeouts) -> None:
        """A declared capability works on the running ``vm``."""
        if capability is Capability.CONSOLE:
            async with self.console(backend, vm) as reader:  # opens, and the guest answers a key
                mark = len(reader.buffer)
                await reader.send(b"\n")
                reader.pos = mark
                await reader.expect(LOGIN + b"|" + PROMPT, timeouts.boot)
        elif capability is Capability.METRICS:
            await self.sample_moves(backend, vm, timeouts)
        else:
            action = Action(capability.value)  # suspend or pause it, and resume it
            for step in (action, Action.RESUME):
                status = EXPECTED[step, (await backend.get(vm)).status]
                info = await self.perform(backend, vm, step, timeouts)
                assert status is not None and info.status is status, (step, info)
                assert (await backend.get(vm)).status is status

    async def sample_moves(self, backend: Backend, vm: str, timeouts: ContractTimeouts) -> None:
        """Readings of a running VM are live: they change as time passes (a QEMU guest's
        CPU time at least, idle as it may be), unlike a stopped VM's constant zeros."""
        first = await backend.sample(vm)
        _check_sample(first)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.action
        while True:
            await asyncio.sleep(0.2)
            later = await backend.sample(vm)
            _check_sample(later)
            assert later.timestamp > first.timestamp
            if _readings(later) != _readings(first):
                return
            assert loop.time() < deadline, f"the metrics of running {vm!r} never changed: {later}"

    async def refused(self, backend: Backend, capability: Capability, vm: str) -> None:
        """An undeclared capability's call fails with the error the handlers map for it."""
        if capability is Capability.CONSOLE:
            with pytest.raises(NoConsole):  # the console endpoint closes with 4005
                await backend.open_console(vm)
        elif capability is Capability.METRICS:
            with pytest.raises(CommandFailed):
                await backend.sample(vm)
        else:
            with pytest.raises(CommandFailed):
                await backend.perform(vm, Action(capability.value))
        assert (await backend.get(vm)).status is VMStatus.RUNNING


class BackendContract(CapabilityContract):
    """What every backend does; see the module docstring for the fixtures to provide."""

    # Inventory

    @pytest.mark.asyncio
    async def test_list_is_sorted_and_holds_the_fixture_vms(
        self, backend: Backend, running_vm: str, stopped_vm: str
    ) -> None:
        infos = await backend.list()
        names = [info.name for info in infos]
        assert names == sorted(names)
        assert len(names) == len(set(names))
        by_name = {info.name: info for info in infos}
        assert by_name[running_vm].status is VMStatus.RUNNING
        assert by_name[stopped_vm].status is VMStatus.STOPPED
        assert all(isinstance(info.status, VMStatus) for info in infos)

    @pytest.mark.asyncio
    async def test_get_agrees_with_list(self, backend: Backend, running_vm: str, stopped_vm: str) -> None:
        running = await backend.get(running_vm)
        stopped = await backend.get(stopped_vm)
        assert (running.name, running.status) == (running_vm, VMStatus.RUNNING)
        assert (stopped.name, stopped.status) == (stopped_vm, VMStatus.STOPPED)
        assert running.uptime >= 0.0
        assert stopped.uptime == 0.0
        assert running.last_state_change > 0 and stopped.last_state_change > 0

    @pytest.mark.asyncio
    async def test_unknown_vm_is_not_found_by_every_method(self, backend: Backend) -> None:
        name = "no-such-vm-contract"
        with pytest.raises(VMNotFound):
            await backend.get(name)
        with pytest.raises(VMNotFound):
            await backend.sample(name)
        for action in Action:
            with pytest.raises(VMNotFound):
                await backend.perform(name, action)
            with pytest.raises(VMNotFound):
                await backend.perform(name, action, force=True)
        with pytest.raises(VMNotFound):
            await backend.open_console(name)

    # The action table

    @pytest.mark.asyncio
    @pytest.mark.parametrize("before", list(VMStatus), ids=lambda s: s.value)
    @pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
    async def test_action_table(
        self,
        backend: Backend,
        running_vm: str,
        stopped_vm: str,
        error_vm: str | None,
        timeouts: ContractTimeouts,
        action: Action,
        before: VMStatus,
    ) -> None:
        if action in (Action.PAUSE, Action.SUSPEND):
            self.require(backend, Capability(action.value))
        name = await self.bring_to(backend, before, running_vm, stopped_vm, error_vm, timeouts)
        expected = EXPECTED[(action, before)]
        if expected is None:
            with pytest.raises(VMNotRunning):
                await self.perform(backend, name, action, timeouts)
            assert (await backend.get(name)).status is before
            return
        info = await self.perform(backend, name, action, timeouts)
        assert info.name == name
        assert info.status is expected
        assert (await backend.get(name)).status is expected
        if expected is VMStatus.STOPPED:
            assert info.uptime == 0.0

    @pytest.mark.asyncio
    async def test_forced_stop_stops(self, backend: Backend, running_vm: str, timeouts: ContractTimeouts) -> None:
        info = await asyncio.wait_for(backend.perform(running_vm, Action.STOP, force=True), timeouts.action)
        await _assert_stopped(backend, info)

    # A forced stop cuts in

    @pytest.mark.asyncio
    async def test_forced_stop_cuts_in_on_a_graceful_stop_the_guest_ignores(
        self, backend: Backend, hung_stop_vm: str | None, timeouts: ContractTimeouts
    ) -> None:
        # `force` is the way out of a stop that hangs: it must not wait in line behind it
        if hung_stop_vm is None:
            pytest.skip("this backend cannot make a guest ignore a graceful stop")
        graceful = asyncio.create_task(backend.perform(hung_stop_vm, Action.STOP))
        try:
            # the graceful stop is under way (the guest was asked) and does not finish
            done, _ = await asyncio.wait({graceful}, timeout=min(1.0, timeouts.action / 4))
            assert not done, "the graceful stop finished: the guest did not ignore it"
            forced = await asyncio.wait_for(backend.perform(hung_stop_vm, Action.STOP, force=True), timeouts.action)
            await _assert_stopped(backend, forced)
            # the graceful stop sees the VM stopped and ends well too, long before its own timeout
            await _assert_stopped(backend, await asyncio.wait_for(graceful, timeouts.action))
        finally:
            if not graceful.done():
                graceful.cancel()
            await asyncio.gather(graceful, return_exceptions=True)

    @pytest.mark.asyncio
    async def test_start_moves_last_state_change_forward(
        self, backend: Backend, stopped_vm: str, timeouts: ContractTimeouts
    ) -> None:
        before = await backend.get(stopped_vm)
        await asyncio.sleep(0.05)  # the clock steps on: the change is strictly later than before's
        after = await self.perform(backend, stopped_vm, Action.START, timeouts)
        assert after.status is VMStatus.RUNNING
        assert after.last_state_change > before.last_state_change, (before, after)
        assert (await backend.get(stopped_vm)).last_state_change == after.last_state_change

    @pytest.mark.asyncio
    async def test_a_graceful_stop_right_after_start_stops(
        self, backend: Backend, stopped_vm: str, timeouts: ContractTimeouts
    ) -> None:
        # a guest still booting ignores the ACPI power button: the stop may wait for the
        # boot (or be forced after the backend's timeout), but it ends in stopped
        await self.perform(backend, stopped_vm, Action.START, timeouts)
        info = await asyncio.wait_for(backend.perform(stopped_vm, Action.STOP), timeouts.boot + timeouts.action)
        await _assert_stopped(backend, info)

    # When an action is done: once it has taken effect at the hypervisor

    @pytest.mark.asyncio
    async def test_start_is_done_when_the_vm_runs_and_the_guest_boots_on(
        self, backend: Backend, stopped_vm: str, timeouts: ContractTimeouts
    ) -> None:
        info = await self.perform(backend, stopped_vm, Action.START, timeouts)
        assert info.status is VMStatus.RUNNING
        # the console opens at once, mid-boot, and the boot goes on to getty's prompt
        async with self.console(backend, stopped_vm) as reader:
            await reader.send(b"\n")
            await reader.expect(LOGIN, timeouts.boot)
            booted = await backend.get(stopped_vm)
        # uptime counts from the power-on: most of the boot came after start returned
        assert info.uptime < booted.uptime / 2, (info.uptime, booted.uptime)

    @pytest.mark.asyncio
    async def test_restart_is_done_at_the_reset_and_the_guest_boots_on(
        self, backend: Backend, running_vm: str, credentials: tuple[str, str], timeouts: ContractTimeouts
    ) -> None:
        # logged in: the console is quiet at a shell prompt, nothing more on its way
        async with self.console(backend, running_vm, (credentials, timeouts)) as reader:
            before = await backend.get(running_vm)
            mark = len(reader.buffer)
            info = await self.perform(backend, running_vm, Action.RESTART, timeouts)
            assert info.status is VMStatus.RUNNING
            assert info.uptime < before.uptime  # a new boot
            # the guest was reset; the new boot's login prompt is yet to come
            since = reader.buffer[mark:]
            assert re.search(rb"login:", since) is None, since[-400:]
            reader.pos = mark
            await reader.expect(LOGIN, timeouts.boot)
            booted = await backend.get(running_vm)
            assert not reader.eof
        assert info.uptime < booted.uptime / 2, (info.uptime, booted.uptime)

    # Events

    @pytest.mark.asyncio
    async def test_listeners_hear_every_transition(
        self, backend: Backend, running_vm: str, timeouts: ContractTimeouts
    ) -> None:
        seen: list[VMInfo] = []
        unsubscribe = backend.subscribe(seen.append)
        steps = [(Action.STOP, VMStatus.STOPPED), (Action.START, VMStatus.RUNNING)]
        if Capability.PAUSE in backend.capabilities:
            steps += [(Action.PAUSE, VMStatus.PAUSED), (Action.RESUME, VMStatus.RUNNING)]
        if Capability.SUSPEND in backend.capabilities:
            steps += [(Action.SUSPEND, VMStatus.SUSPENDED), (Action.RESUME, VMStatus.RUNNING)]
        try:
            for action, status in steps:
                count = len(seen)
                await self.perform(backend, running_vm, action, timeouts)

                def arrived(count: int = count, status: VMStatus = status) -> bool:
                    return any(i.name == running_vm and i.status is status for i in seen[count:])

                await wait_until(arrived, timeouts.action, f"a {status.value} event after {action.value}")
        finally:
            unsubscribe()
        count = len(seen)
        await self.perform(backend, running_vm, Action.STOP, timeouts)
        await asyncio.sleep(0.05)
        assert seen[count:] == [], "a listener was called after unsubscribing"

    # Metrics

    @pytest.mark.asyncio
    async def test_metrics_of_a_running_vm(self, backend: Backend, running_vm: str) -> None:
        self.require(backend, Capability.METRICS)
        first = await backend.sample(running_vm)
        _check_sample(first)
        await asyncio.sleep(0.3)
        second = await backend.sample(running_vm)
        _check_sample(second)
        assert second.timestamp >= first.timestamp
        assert second.memory_total == first.memory_total
        assert second.net_rx_bytes >= first.net_rx_bytes
        assert second.net_tx_bytes >= first.net_tx_bytes
        assert second.disk_read_bytes >= first.disk_read_bytes
        assert second.disk_write_bytes >= first.disk_write_bytes

    @pytest.mark.asyncio
    async def test_counters_carry_on_across_a_restart(
        self, backend: Backend, running_vm: str, timeouts: ContractTimeouts
    ) -> None:
        # a guest reboot keeps its QEMU process: the counters are cumulative since the
        # VM was started, not since the guest booted
        self.require(backend, Capability.METRICS)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.boot
        before = await backend.sample(running_vm)
        while not any(_counters(before)):  # a booted guest has read its disk at least
            assert loop.time() < deadline, "the running VM's counters stayed at zero"
            await asyncio.sleep(0.2)
            before = await backend.sample(running_vm)
        await self.perform(backend, running_vm, Action.RESTART, timeouts)
        after = await backend.sample(running_vm)
        await asyncio.sleep(0.3)
        later = await backend.sample(running_vm)
        for older, newer in ((before, after), (after, later)):
            _check_sample(newer)
            assert all(b >= a for a, b in zip(_counters(older), _counters(newer), strict=True)), (older, newer)

    @pytest.mark.asyncio
    async def test_metrics_of_a_stopped_vm_are_zero_but_memory_total(self, backend: Backend, stopped_vm: str) -> None:
        self.require(backend, Capability.METRICS)
        sample = await backend.sample(stopped_vm)
        assert sample.memory_total > 0
        assert (sample.cpu_utilization, sample.memory_used) == (0.0, 0)
        assert (sample.net_rx_bytes, sample.net_tx_bytes, sample.disk_read_bytes, sample.disk_write_bytes) == (
            0,
            0,
            0,
            0,
        )

    # Console

    @pytest.mark.asyncio
    async def test_console_of_a_stopped_vm_is_refused(self, backend: Backend, stopped_vm: str) -> None:
        self.require(backend, Capability.CONSOLE)
        with pytest.raises(VMNotRunning):
            await backend.open_console(stopped_vm)

    @pytest.mark.asyncio
    async def test_console_of_a_suspended_vm_is_refused(
        self, backend: Backend, running_vm: str, timeouts: ContractTimeouts
    ) -> None:
        self.require(backend, Capability.CONSOLE, Capability.SUSPEND)
        await self.perform(backend, running_vm, Action.SUSPEND, timeouts)
        with pytest.raises(VMNotRunning):
            await backend.open_console(running_vm)

    # Console of a paused VM (docs/protocol.md: a new viewer gets 4009, those attached stay)

    @pytest.mark.asyncio
    async def test_console_of_a_paused_vm_is_refused_but_an_attached_reader_stays(
        self, backend: Backend, running_vm: str, credentials: tuple[str, str], timeouts: ContractTimeouts
    ) -> None:
        self.require(backend, Capability.CONSOLE, Capability.PAUSE)
        async with self.console(backend, running_vm, (credentials, timeouts)) as reader:
            await self.perform(backend, running_vm, Action.PAUSE, timeouts)
            with pytest.raises(VMNotRunning):
                await backend.open_console(running_vm)
            assert not reader.eof
            await self.perform(backend, running_vm, Action.RESUME, timeouts)
            assert (await self.run(reader, "echo after-pause", timeouts)).strip() == b"after-pause"
            assert not reader.eof

    @pytest.mark.asyncio
    async def test_console_login_and_commands(
        self, backend: Backend, running_vm: str, credentials: tuple[str, str], timeouts: ContractTimeouts
    ) -> None:
        async with self.console(backend, running_vm, (credentials, timeouts)) as reader:
            assert (await self.run(reader, "hostname", timeouts)).strip() == running_vm.encode()
            assert (await self.run(reader, "echo contract-marker-42", timeouts)).strip() == b"contract-marker-42"
            assert b"not found" in await self.run(reader, "no-such-command-xyz", timeouts)
            assert (await self.run(reader, "whoami", timeouts)).strip() == credentials[0].encode()

    @pytest.mark.asyncio
    async def test_console_line_editing(
        self, backend: Backend, running_vm: str, credentials: tuple[str, str], timeouts: ContractTimeouts
    ) -> None:
        async with self.console(backend, running_vm, (credentials, timeouts)) as reader:
            # DEL erases the X before it reaches the shell
            await reader.send(b"echo abX\x7fc\n")
            await reader.expect(rb"\r\nabc\r\n", timeouts.console)
            await reader.expect(PROMPT, timeouts.console)
            # Ctrl-C abandons the line: a new prompt, and the line never runs
            await reader.send(b"echo never-run\x03")
            await reader.expect(rb"\^C\r?\n", timeouts.console)
            await reader.expect(PROMPT, timeouts.console)
            assert (await self.run(reader, "echo after", timeouts)).strip() == b"after"
            assert b"never-run\r\n" not in reader.buffer.replace(b"echo never-run", b"")

    @pytest.mark.asyncio
    async def test_console_wrong_password(
        self, backend: Backend, running_vm: str, credentials: tuple[str, str], timeouts: ContractTimeouts
    ) -> None:
        async with self.console(backend, running_vm) as reader:
            await reader.send(b"\n")
            await reader.expect(LOGIN, timeouts.boot)
            await reader.send(credentials[0].encode() + b"\n")
            await reader.expect(PASSWORD, timeouts.console)
            await reader.send(b"wrong-password\n")
            await reader.expect(rb"Login incorrect", timeouts.console + 5.0)  # login sleeps before saying so
            await reader.expect(LOGIN, timeouts.console)

    @pytest.mark.asyncio
    async def test_console_survives_restart(
        self, backend: Backend, running_vm: str, credentials: tuple[str, str], timeouts: ContractTimeouts
    ) -> None:
        async with self.console(backend, running_vm, (credentials, timeouts)) as reader:
            await self.perform(backend, running_vm, Action.RESTART, timeouts)
            await reader.expect(LOGIN, timeouts.boot)
            assert not reader.eof
            await self.login(reader, credentials, timeouts)
            assert (await self.run(reader, "hostname", timeouts)).strip() == running_vm.encode()

    @pytest.mark.asyncio
    async def test_console_reaches_eof_on_stop(
        self, backend: Backend, running_vm: str, timeouts: ContractTimeouts
    ) -> None:
        async with self.console(backend, running_vm) as reader:
            await self.perform(backend, running_vm, Action.STOP, timeouts)
            await reader.expect_eof(timeouts.action)

    @pytest.mark.asyncio
    async def test_console_close_ends_a_pending_read(self, backend: Backend, running_vm: str) -> None:
        self.require(backend, Capability.CONSOLE)
        stream = await backend.open_console(running_vm)
        # drain what is already there (a banner, say) so the next read waits
        first = asyncio.create_task(stream.read())
        await asyncio.sleep(0.05)
        pending = first if not first.done() else asyncio.create_task(stream.read())
        await asyncio.sleep(0.05)
        await stream.close()
        assert await asyncio.wait_for(pending, 5.0) == b""

    # The screen (/ws/vms/{name}/screen): a socket to the VM's RFB server, on by default

    @pytest.fixture
    def screens(self) -> bool:
        """False for a backend without graphical screens: each ``open_screen`` is ``NoScreen``."""
        return True

    @contextlib.asynccontextmanager
    async def screen(self, backend: Backend, name: str) -> AsyncIterator[RFBClient]:
        """An RFB session on ``name``'s screen, closed after."""
        client = await RFBClient.connect(await StreamTransport.over_socket(await backend.open_screen(name)))
        try:
            yield client
        finally:
            await client.close()

    async def booted(self, backend: Backend, name: str, timeouts: ContractTimeouts) -> None:
        """Wait until ``name`` has booted to its logins (its serial console answers one)."""
        async with self.console(backend, name) as reader:
            await reader.send(b"\n")
            await reader.expect(LOGIN + b"|" + PROMPT, timeouts.boot)

    @pytest.mark.asyncio
    async def test_screen_of_a_running_vm_speaks_rfb_and_changes_after_keys(
        self, backend: Backend, running_vm: str, screens: bool, timeouts: ContractTimeouts
    ) -> None:
        if not screens:
            with pytest.raises(NoScreen):  # the screen endpoint closes with 4006
                await backend.open_screen(running_vm)
            return
        # Booted first, so that what changes after the keys is theirs, not the boot's.
        await self.booted(backend, running_vm, timeouts)
        async with self.screen(backend, running_vm) as client:
            await client.request_update(incremental=False)
            await asyncio.wait_for(client.read_update(), timeouts.console)
            assert client.width > 0 and client.height > 0
            assert not client.is_blank(), "a running VM's screen shows its console"
            before = bytes(client.framebuffer)
            await type_keys(client, "vmwskeys")  # echoed at tty1's login prompt
            await wait_for_change(client, before, 5, timeouts.console)
            for _ in "vmwskeys":  # leave the login prompt as it was
                await client.press(KEY_BACKSPACE)

    @pytest.mark.asyncio
    async def test_screen_of_a_paused_vm_is_served(
        self, backend: Backend, running_vm: str, screens: bool, timeouts: ContractTimeouts
    ) -> None:
        self.require(backend, Capability.PAUSE)
        if not screens:
            pytest.skip(
                "cannot run here: this backend has no screens (libvirt test:/// opens no graphics; its NoScreen refusal is asserted by the stopped/unknown screen cases)"
            )
        await self.perform(backend, running_vm, Action.PAUSE, timeouts)
        try:
            async with self.screen(backend, running_vm) as client:  # frozen, but there
                await client.request_update(incremental=False)
                await asyncio.wait_for(client.read_update(), timeouts.console)
                assert client.width > 0 and client.height > 0
        finally:
            await self.perform(backend, running_vm, Action.RESUME, timeouts)

    @pytest.mark.asyncio
    async def test_screen_of_a_stopped_vm_is_refused(self, backend: Backend, stopped_vm: str) -> None:
        with pytest.raises(VMNotRunning):  # 4009 on the screen endpoint, as on the console's
            await backend.open_screen(stopped_vm)

    @pytest.mark.asyncio
    async def test_screen_of_an_unknown_vm_is_not_found(self, backend: Backend) -> None:
        with pytest.raises(VMNotFound):
            await backend.open_screen("no-such-vm-for-a-screen")


KEY_SHIFT_L = 0xFFE1
# What a US keyboard types with Shift held. QEMU turns a keysym into the scancode of
# its key and leaves the modifiers to the client, as a person's VNC viewer sends them
# ('$' without Shift comes out as '4').
_SHIFTED = frozenset('~!@#$%^&*()_+{}|:"<>?ABCDEFGHIJKLMNOPQRSTUVWXYZ')


async def type_keys(client: RFBClient, text: str) -> None:
    """Type ``text`` as a person would on a US keyboard (Shift where needed); ``\\n`` is Return.

    Paced like fast typing: a PC's keyboard controller holds only a few scancodes.
    """
    for char in text:
        if char in _SHIFTED:
            await client.key(KEY_SHIFT_L, down=True)
        await client.press(KEY_RETURN if char == "\n" else ord(char))
        if char in _SHIFTED:
            await client.key(KEY_SHIFT_L, down=False)
        await asyncio.sleep(0.02)


def changed_columns(before: bytes, after: bytes, width: int) -> int:
    """In how many of an 80-column text screen's columns ``after`` differs from ``before``.

    A blinking cursor changes one column; text typed at a prompt, one per character.
    """
    columns: set[int] = set()
    row = width * BYTES_PER_PIXEL
    for start in range(0, min(len(before), len(after)), row):
        old, new = before[start : start + row], after[start : start + row]
        if old != new:
            columns.update(
                x * 80 // width for x in range(width) if old[x * BYTES_PER_PIXEL : (x + 1) * BYTES_PER_PIXEL]
                != new[x * BYTES_PER_PIXEL : (x + 1) * BYTES_PER_PIXEL]
            )  # fmt: skip
    return len(columns)


async def wait_for_change(client: RFBClient, before: bytes, columns: int, timeout: float) -> int:
    """Read updates until the picture differs from ``before`` in ``columns`` text columns
    or more (so not by a blinking cursor alone); how many it does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        changed = changed_columns(before, bytes(client.framebuffer), client.width)
        if changed >= columns:
            return changed
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"the screen changed in {changed} text columns, not {columns}, in {timeout} s")
        await client.request_update(incremental=True)
        try:
            await asyncio.wait_for(client.read_update(), left)
        except TimeoutError:
            pass
