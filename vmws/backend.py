"""The Backend seam: the one async interface every VM source implements.

The hub and handlers talk only to this interface, never to a simulator or libvirt
directly (docs/architecture.md: the modules and who calls whom). One contract suite (``tests/contract``)
runs against every implementation so they behave alike.

Action semantics every backend follows: ``ACTIONS`` below, the one table both
backends consult to decide what to do and what to refuse (rows: action; columns:
status before; a test keeps this rendering equal to the data):

    action   running    stopped    paused     suspended  error
    start    no-op      boot       unpause    restore    boot
    stop     shutdown   no-op      power off  power off  power off
    restart  reboot     refuse     refuse     refuse     refuse
    suspend  save       refuse     save       no-op      refuse
    resume   no-op      refuse     unpause    restore    refuse
    pause    pause      refuse     no-op      refuse     refuse

Each ``Step`` names the status it leads to: boot, reboot, restore and unpause →
running; shutdown and power off → stopped; save → suspended; pause → paused; a no-op
succeeds at once and changes nothing; refuse is ``VMNotRunning``.

``stop`` is a graceful (ACPI) shutdown that is forced after the backend's timeout, or
forced at once with ``force=True``. ``suspend`` saves guest state to disk and frees the
host (libvirt managed save); ``paused`` is a VM halted in memory. ``perform`` returns
once the action has taken effect at the hypervisor; the guest may still be booting
(``start`` returns when the VM runs, ``restart`` once the guest has been reset, and
the boot log continues on the console). It returns the VM's resulting ``VMInfo``.
"""

from __future__ import annotations

import enum
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Self

from vmws.errors import BackendError, CommandFailed, NoConsole, NoScreen, VMNotRunning

if TYPE_CHECKING:
    from vmws.config import Config

__all__ = [
    "VMStatus",
    "Action",
    "VMInfo",
    "MetricsSample",
    "StatusListener",
    "ConsoleStream",
    "Backend",
    "Capability",
    "Step",
    "ACTIONS",
    "step_of",
    "render_action_table",
    "missing_capability",
    "ACTION_CAPABILITIES",
    "check_screen_status",
]


class VMStatus(str, enum.Enum):
    """A VM's status; the value is the protocol's wire string."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    ERROR = "error"


class Action(str, enum.Enum):
    """A control action; the value is the protocol's wire string."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    SUSPEND = "suspend"
    RESUME = "resume"
    PAUSE = "pause"


class Step(enum.Enum):
    """What an action does to a VM in one status: a cell of ``ACTIONS``."""

    NOOP = "no-op"  # already there: succeeds at once, changes nothing
    REFUSE = "refuse"  # VMNotRunning: the action makes no sense from this status
    BOOT = "boot"  # power on, a new boot (a crashed domain kept for inspection goes first)
    SHUTDOWN = "shutdown"  # the ACPI power button, forced after the timeout or at once with force
    POWER_OFF = "power off"  # at once: destroy, or discard a suspended VM's saved state
    REBOOT = "reboot"  # the guest restarts (a reset when forced); the VM stays up
    SAVE = "save"  # managed save: guest state to disk, the host freed
    RESTORE = "restore"  # from the managed save, the guest carries on where it was
    PAUSE = "pause"  # halted in memory
    UNPAUSE = "unpause"  # a paused VM continues

    @property
    def status(self) -> VMStatus | None:
        """The status this step leads to; None for a no-op (the status stays) or a refusal."""
        return _STEP_STATUS.get(self)


_STEP_STATUS: dict[Step, VMStatus] = {
    Step.BOOT: VMStatus.RUNNING,
    Step.REBOOT: VMStatus.RUNNING,
    Step.RESTORE: VMStatus.RUNNING,
    Step.UNPAUSE: VMStatus.RUNNING,
    Step.SHUTDOWN: VMStatus.STOPPED,
    Step.POWER_OFF: VMStatus.STOPPED,
    Step.SAVE: VMStatus.SUSPENDED,
    Step.PAUSE: VMStatus.PAUSED,
}


def _row(action: Action, *steps: Step) -> dict[tuple[Action, VMStatus], Step]:
    return {(action, status): step for status, step in zip(VMStatus, steps, strict=True)}


_X = Step.REFUSE
# The action table: (action, status before) → step. Columns in VMStatus order:
#                      running          stopped          paused           suspended        error
ACTIONS: Mapping[tuple[Action, VMStatus], Step] = MappingProxyType({
    **_row(Action.START,   Step.NOOP,       Step.BOOT,       Step.UNPAUSE,    Step.RESTORE,    Step.BOOT),
    **_row(Action.STOP,    Step.SHUTDOWN,   Step.NOOP,       Step.POWER_OFF,  Step.POWER_OFF,  Step.POWER_OFF),
    **_row(Action.RESTART, Step.REBOOT,     _X,              _X,              _X,              _X),
    **_row(Action.SUSPEND, Step.SAVE,       _X,              Step.SAVE,       Step.NOOP,       _X),
    **_row(Action.RESUME,  Step.NOOP,       _X,              Step.UNPAUSE,    Step.RESTORE,    _X),
    **_row(Action.PAUSE,   Step.PAUSE,      _X,              Step.NOOP,       _X,              _X),
})  # fmt: skip


def step_of(action: Action, status: VMStatus, name: str) -> Step:
    """What ``action`` does to VM ``name`` in ``status``; raises ``VMNotRunning`` where
    the table refuses, with the one message every backend gives."""
    step = ACTIONS[action, status]
    if step is Step.REFUSE:
        raise VMNotRunning(f"VM {name!r} is {status.value}: cannot {action.value} it")
    return step


def render_action_table() -> str:
    """``ACTIONS`` as the text table of this module's docstring."""
    width = max(len(s.value) for s in Step) + 2
    lines = ["action   " + "".join(s.value.ljust(width) for s in VMStatus).rstrip()]
    for action in Action:
        cells = "".join(ACTIONS[action, status].value.ljust(width) for status in VMStatus)
        lines.append(f"{action.value:<9}{cells}".rstrip())
    return "\n".join(lines)


class Capability(str, enum.Enum):
    """Optional abilities; libvirt's ``test:///`` driver, for one, has no console.

    A backend that does not declare one refuses the call it governs with
    ``missing_capability``'s error: ``open_console`` with ``NoConsole`` (close 4005),
    ``sample`` with ``CommandFailed``, ``perform`` of ``suspend`` / ``pause`` with
    ``CommandFailed``. The contract suite checks both ways: what is declared works,
    what is not is refused so.
    """

    CONSOLE = "console"
    METRICS = "metrics"
    SUSPEND = "suspend"
    PAUSE = "pause"


def missing_capability(capability: Capability, what: str) -> BackendError:
    """The error for ``what``, a call that ``capability`` governs, on a backend without it."""
    if capability is Capability.CONSOLE:
        return NoConsole(f"this server's backend has no consoles (it cannot {what})")
    return CommandFailed(f"this server's backend cannot {what} (it has no {capability.value} capability)")


# The actions that need a capability (the others every backend has).
ACTION_CAPABILITIES: Mapping[Action, Capability] = MappingProxyType(
    {
        Action.SUSPEND: Capability.SUSPEND,
        Action.PAUSE: Capability.PAUSE,
    }
)


@dataclass(frozen=True, slots=True)
class VMInfo:
    """One VM's status as of ``last_state_change``.

    ``last_state_change`` is seconds since the Unix epoch (the backend's clock);
    ``uptime`` is seconds since the guest last booted, 0 when not running/paused.
    """

    name: str
    status: VMStatus
    last_state_change: float
    uptime: float


@dataclass(frozen=True, slots=True)
class MetricsSample:
    """One metrics reading.

    ``cpu_utilization`` is percent of the VM's vCPUs (0–100). Memory is in bytes,
    ``memory_used <= memory_total``. Network and disk values are cumulative byte
    counters since the VM was started (a reboot or suspend/resume keeps counting):
    they never decrease while it runs.
    """

    timestamp: float
    cpu_utilization: float
    memory_used: int
    memory_total: int
    net_rx_bytes: int
    net_tx_bytes: int
    disk_read_bytes: int
    disk_write_bytes: int


StatusListener = Callable[[VMInfo], None]


class ConsoleStream(ABC):
    """A VM's serial console: the bytes it prints and a way to type into it.

    One stream per VM is opened, by the hub, which shares it among viewers. The
    stream survives a guest ``restart`` (the boot log flows on); ``read`` returns
    ``b""`` once the VM stops or crashes (eof) or the stream was closed.
    """

    @abstractmethod
    async def read(self) -> bytes:
        """Wait for the next chunk of output; ``b""`` means end of stream."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Send keystrokes to the guest, in order."""

    @abstractmethod
    async def close(self) -> None:
        """Release the stream; a pending ``read`` returns ``b""``."""


class Backend(ABC):
    """A source of VMs. Errors raised are those of ``vmws.errors`` only."""

    capabilities: frozenset[Capability] = frozenset(Capability)

    @classmethod
    def from_config(cls, config: Config) -> Self:
        """The backend ``vmws serve`` runs, built from the options that concern it.

        Every backend named in ``vmws.backends.BACKENDS`` has one; a backend made only
        in code (a test's fake) need not.
        """
        raise NotImplementedError(f"{cls.__name__} cannot be built from the server's options")

    def check_capability(self, capability: Capability, what: str) -> None:
        """Refuse ``what`` unless this backend declares ``capability`` (see ``Capability``)."""
        if capability not in self.capabilities:
            raise missing_capability(capability, what)

    def check_action(self, action: Action) -> None:
        """Refuse ``action`` if it needs a capability this backend does not declare."""
        needed = ACTION_CAPABILITIES.get(action)
        if needed is not None:
            self.check_capability(needed, f"{action.value} a VM")

    async def start(self) -> None:
        """Connect to the VM source; called once, inside the running event loop."""

    async def close(self) -> None:
        """Release everything; called once at shutdown."""

    @abstractmethod
    async def list(self) -> list[VMInfo]:
        """Every VM this backend serves, sorted by name."""

    @abstractmethod
    async def get(self, name: str) -> VMInfo:
        """One VM's current status; ``VMNotFound`` if there is no such VM."""

    @abstractmethod
    async def sample(self, name: str) -> MetricsSample:
        """A metrics reading now (zeros but ``memory_total`` when not running);
        ``CommandFailed`` without ``Capability.METRICS``."""

    @abstractmethod
    async def perform(self, name: str, action: Action, *, force: bool = False) -> VMInfo:
        """Carry out ``action`` and return the resulting status (see ``ACTIONS``);
        ``CommandFailed`` for an action whose capability is not declared."""

    @abstractmethod
    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        """Call ``listener`` with the new ``VMInfo`` on every status change of any VM,
        whoever caused it (a command, the guest, a fault). Returns an unsubscribe."""

    @abstractmethod
    async def open_console(self, name: str) -> ConsoleStream:
        """Open the VM's console; ``VMNotRunning`` unless it is running (a paused VM takes
        no new reader; one attached before the pause stays), ``NoConsole`` without
        ``Capability.CONSOLE`` (``VMNotFound`` comes first for an unknown VM)."""

    async def open_screen(self, name: str) -> socket.socket:
        """A connected ``SOCK_STREAM`` socket whose peer is the VM's RFB (VNC) server: it
        sends its RFB version string first; the caller owns and closes the socket.

        ``VMNotFound`` first for an unknown VM, then ``VMNotRunning`` unless the VM is
        running or paused (a paused VM's screen is served, frozen), then ``NoScreen``
        when the VM has no graphical screen or this node cannot open it. Not abstract:
        a backend without screens keeps this default, which refuses every VM.
        """
        info = await self.get(name)  # an unknown VM is VMNotFound first
        check_screen_status(info)
        raise NoScreen("this server's backend has no graphical screens")


def check_screen_status(info: VMInfo) -> None:
    """Refuse a screen for a VM that is neither running nor paused (``VMNotRunning``)."""
    if info.status not in (VMStatus.RUNNING, VMStatus.PAUSED):
        raise VMNotRunning(f"VM {info.name!r} is {info.status.value}: it has no screen")
