"""Fleet descriptions: the values a simulation starts from.

A ``FleetSpec`` is what a scenario file (``simulator/scenario.py`` parses them, and
the built-in demo fleet; the format is documented in ``docs/simulator.md``) describes:
the VMs with their personality (what the guest OS looks like from its console),
timings, metrics profile and initial status, and a timeline of scripted events.
Everything here is a frozen value; VMs made from one template share the same
personality, timings and profile objects, which keeps 10,000 of them cheap.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from vmws.backend import Action, VMStatus

__all__ = [
    "Init",
    "User",
    "Personality",
    "Timings",
    "ProfileKind",
    "MetricsProfile",
    "PROFILES",
    "EventKind",
    "TimelineEvent",
    "VMSpec",
    "FleetSpec",
    "valid_name",
]

# Any printable name that stays one URL path segment: libvirt allows '<', '&' and
# quotes in domain names, and the UI must cope with them, so the simulator does too.
_NAME_RE = re.compile(r"^[^/\x00-\x1f\x7f]{1,63}$")


def valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and name == name.strip()


class Init(str, enum.Enum):
    """The init system, which decides how the boot and shutdown logs look."""

    SYSTEMD = "systemd"
    OPENRC = "openrc"


@dataclass(frozen=True, slots=True)
class User:
    """A login on the guest."""

    name: str
    password: str
    sudo: bool = False

    @property
    def home(self) -> str:
        return "/root" if self.name == "root" else f"/home/{self.name}"


_UBUNTU_OS_RELEASE = (
    'PRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
    'NAME="Ubuntu"\n'
    'VERSION_ID="22.04"\n'
    'VERSION="22.04.4 LTS (Jammy Jellyfish)"\n'
    "VERSION_CODENAME=jammy\n"
    "ID=ubuntu\n"
    "ID_LIKE=debian\n"
    'HOME_URL="https://www.ubuntu.com/"\n'
)


@dataclass(frozen=True, slots=True)
class Personality:
    """What the guest OS looks like from its serial console.

    The defaults are Ubuntu 22.04 (``simulator/personalities.py`` holds the other
    built-ins). ``hostname`` and ``issue`` are templates: ``{name}`` is the VM's
    name, ``{hostname}``, ``{os_name}``, ``{tty}`` and ``{kernel}`` what they say.
    ``files`` are the static files of the fake tree (path, content); ``/etc/hostname``
    and each user's ``notes.txt`` are added per VM.
    """

    name: str = "ubuntu-22.04"
    os_name: str = "Ubuntu 22.04.4 LTS"
    kernel: str = "5.15.0-105-generic"
    kernel_build: str = "#115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024"
    hostname: str = "{name}"
    issue: str = "{os_name} {hostname} {tty}"
    welcome: str = "Welcome to {os_name} (GNU/Linux {kernel} x86_64)\n\n * Documentation:  https://help.ubuntu.com\n\n"
    motd: str = ""
    prompt: str = "{user}@{host}:{cwd}{sigil} "
    tty: str = "ttyS0"
    init: Init = Init.SYSTEMD
    users: tuple[User, ...] = (User("admin", "admin", sudo=True),)
    files: tuple[tuple[str, str], ...] = (
        ("/etc/os-release", _UBUNTU_OS_RELEASE),
        ("/etc/issue", "Ubuntu 22.04.4 LTS \\n \\l\n\n"),
        ("/etc/motd", ""),
    )

    @property
    def username(self) -> str:
        """The first user: the one scenario authors and tests log in as."""
        return self.users[0].name

    @property
    def password(self) -> str:
        return self.users[0].password

    def user(self, name: str) -> User | None:
        for user in self.users:
            if user.name == name:
                return user
        return None

    def hostname_for(self, vm_name: str) -> str:
        return self.hostname.replace("{name}", vm_name)


@dataclass(frozen=True, slots=True)
class Timings:
    """Durations in clock seconds; transitions are jittered by up to ±20 %.

    ``shutdown_timeout``: a graceful stop not finished by then is forced off (as the
    Backend table says). ``restart_timeout``: a graceful restart the guest has not
    carried out by then (it ignores the request while booting) becomes a reset, as the
    libvirt backend's ``restart_timeout`` does.
    """

    boot: float = 1.5
    shutdown: float = 1.0
    reboot_shutdown: float = 0.4
    save: float = 0.6
    restore: float = 0.4
    pause: float = 0.05
    destroy: float = 0.1
    login_failure_delay: float = 1.0
    shutdown_timeout: float = 30.0
    restart_timeout: float = 60.0


class ProfileKind(str, enum.Enum):
    """The shape of a metrics curve (``simulator/metrics.py``)."""

    IDLE = "idle"  # a few percent CPU, flat memory, a trickle of I/O
    WEB = "web"  # a diurnal sine with noise; traffic follows it
    BATCH = "batch"  # quiet, then a job every `period` that runs flat out for `burst`
    LEAK = "leak"  # memory ramps up over `period`, then the OOM killer resets it


@dataclass(frozen=True, slots=True)
class MetricsProfile:
    """Parameters of a metrics curve; each VM adds its own seeded variation.

    ``cpu`` is the mean utilisation (percent of the VM's vCPUs), ``memory`` the mean
    fraction of memory used, ``net`` bytes/s received (sent is 40 % of it), ``disk``
    bytes/s written (read is 30 % of it), ``period`` and ``burst`` in seconds.
    """

    name: str
    kind: ProfileKind
    cpu: float
    memory: float
    net: float
    disk: float
    period: float
    burst: float = 0.0


PROFILES: dict[str, MetricsProfile] = {
    "idle": MetricsProfile("idle", ProfileKind.IDLE, cpu=2.0, memory=0.25, net=800.0, disk=2_000.0, period=600.0),
    "web": MetricsProfile("web", ProfileKind.WEB, cpu=25.0, memory=0.45, net=400_000.0, disk=60_000.0, period=86_400.0),
    "batch": MetricsProfile(
        "batch", ProfileKind.BATCH, cpu=4.0, memory=0.35, net=20_000.0, disk=8_000_000.0, period=900.0, burst=180.0
    ),
    "leak": MetricsProfile("leak", ProfileKind.LEAK, cpu=8.0, memory=0.3, net=30_000.0, disk=20_000.0, period=7_200.0),
}


class EventKind(str, enum.Enum):
    """What a timeline entry does to its VMs; the value is the scenario's spelling."""

    # faults
    CRASH = "crash"
    HANG_ON_SHUTDOWN = "hang-on-shutdown"
    FAIL_NEXT_COMMAND = "fail-next-command"
    STUCK_BOOTING = "stuck-booting"
    PAUSE = "pause"
    DISK_BURST = "disk-burst"
    NETWORK_BURST = "network-burst"
    # actions, as if a user had sent the command
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    SUSPEND = "suspend"
    RESUME = "resume"
    # keystrokes on the serial console
    TYPE = "type"

    @property
    def action(self) -> Action | None:
        """The command this event sends, for the action events (``pause`` is a fault:
        the VM is paused by other means, not by a command)."""
        return _EVENT_ACTIONS.get(self)


_EVENT_ACTIONS = {
    EventKind.START: Action.START,
    EventKind.STOP: Action.STOP,
    EventKind.RESTART: Action.RESTART,
    EventKind.SUSPEND: Action.SUSPEND,
    EventKind.RESUME: Action.RESUME,
}


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One ``[[event]]``: at ``at`` clock seconds after the simulation starts (then
    every ``every`` seconds, ``repeat`` times or forever), do ``kind`` to ``vms``
    (or to ``pick`` of them, chosen by the seeded generator)."""

    at: float
    kind: EventKind
    vms: tuple[str, ...]
    selector: str
    line: int | None = None
    pick: int | None = None
    every: float | None = None
    repeat: int | None = None
    force: bool = False
    duration: float | None = None
    rate: float | None = None
    message: str | None = None
    action: Action | None = None
    times: int = 1
    text: str = ""


@dataclass(frozen=True, slots=True)
class VMSpec:
    """One VM as the simulation starts it."""

    name: str
    status: VMStatus = VMStatus.RUNNING
    memory_mib: int = 2048
    vcpus: int = 2
    personality: Personality = Personality()
    timings: Timings = Timings()
    profile: MetricsProfile = PROFILES["idle"]


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """A whole fleet, in file order (the engine sorts by name where it matters)."""

    vms: tuple[VMSpec, ...]
    events: tuple[TimelineEvent, ...] = ()
    name: str = ""
    description: str = ""
