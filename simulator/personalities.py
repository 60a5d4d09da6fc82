"""The built-in guest personalities a scenario can name (or start a custom one from).

``ubuntu-22.04`` is the default (``Personality()`` itself); ``debian-12`` and
``alpine-3.19`` look like those distributions' cloud images from the serial console:
their getty banner, kernel, welcome text, prompt, init system and ``/etc`` files.
"""

from __future__ import annotations

from simulator.fleet import Init, Personality, User

__all__ = ["BUILTIN", "ALIASES", "builtin"]

_DEBIAN_OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
    'NAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\n'
    'VERSION="12 (bookworm)"\n'
    "VERSION_CODENAME=bookworm\n"
    "ID=debian\n"
    'HOME_URL="https://www.debian.org/"\n'
)

_DEBIAN_MOTD = (
    "The programs included with the Debian GNU/Linux system are free software;\n"
    "the exact distribution terms for each program are described in the\n"
    "individual files in /usr/share/doc/*/copyright.\n\n"
    "Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\n"
    "permitted by applicable law.\n"
)

_ALPINE_OS_RELEASE = (
    'NAME="Alpine Linux"\n'
    "ID=alpine\n"
    "VERSION_ID=3.19.1\n"
    'PRETTY_NAME="Alpine Linux v3.19"\n'
    'HOME_URL="https://alpinelinux.org/"\n'
)

_ALPINE_MOTD = (
    "Welcome to Alpine!\n\n"
    "The Alpine Wiki contains a large amount of how-to guides and general\n"
    "information about administrating Alpine systems.\n"
    "See <https://wiki.alpinelinux.org/>.\n"
)

UBUNTU = Personality()

DEBIAN = Personality(
    name="debian-12",
    os_name="Debian GNU/Linux 12",
    kernel="6.1.0-18-cloud-amd64",
    kernel_build="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
    welcome="Linux {hostname} {kernel} {kernel_build} x86_64\n\n",
    motd=_DEBIAN_MOTD,
    users=(User("admin", "admin", sudo=True),),
    files=(
        ("/etc/os-release", _DEBIAN_OS_RELEASE),
        ("/etc/issue", "Debian GNU/Linux 12 \\n \\l\n\n"),
        ("/etc/debian_version", "12.5\n"),
        ("/etc/motd", _DEBIAN_MOTD),
    ),
)

ALPINE = Personality(
    name="alpine-3.19",
    os_name="Alpine Linux 3.19",
    kernel="6.6.14-0-virt",
    kernel_build="#1-Alpine SMP PREEMPT_DYNAMIC Fri, 26 Jan 2024 11:08:07 +0000",
    issue="Welcome to {os_name}\nKernel {kernel} on an x86_64 (/dev/{tty})",
    welcome="",
    motd=_ALPINE_MOTD,
    prompt="{host}:{cwd}{sigil} ",
    init=Init.OPENRC,
    users=(User("root", "alpine"), User("alpine", "alpine", sudo=True)),
    files=(
        ("/etc/os-release", _ALPINE_OS_RELEASE),
        ("/etc/alpine-release", "3.19.1\n"),
        ("/etc/issue", "Welcome to Alpine Linux 3.19\nKernel \\r on an \\m (\\l)\n\n"),
        ("/etc/motd", _ALPINE_MOTD),
    ),
)

BUILTIN: dict[str, Personality] = {p.name: p for p in (UBUNTU, DEBIAN, ALPINE)}
ALIASES: dict[str, str] = {"ubuntu": "ubuntu-22.04", "debian": "debian-12", "alpine": "alpine-3.19"}


def builtin(name: str) -> Personality | None:
    """A built-in personality by its name or alias (``ubuntu``, ``debian``, ``alpine``)."""
    return BUILTIN.get(ALIASES.get(name, name))
