"""``vmws.backends.libvirt.screen``: which connections can hand over a screen, which
graphics device is the VNC one, and the socket made from libvirt's descriptor."""

from __future__ import annotations

import socket

import libvirt
import pytest

from vmws.backends.libvirt.screen import open_vnc_socket, uri_refusal, vnc_index
from vmws.errors import NoScreen


@pytest.mark.parametrize(
    "uri",
    ["qemu:///system", "qemu:///session", "qemu+unix:///system", "qemu:///system?socket=/run/x.sock", "xen:///"],
)
def test_local_unix_socket_connections_can_open_screens(uri: str) -> None:
    assert uri_refusal(uri) is None


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("qemu+ssh://root@node-2/system", "host 'node-2'"),
        ("qemu://node-2.example/system", "host 'node-2.example'"),
        ("qemu+tcp://localhost/system", "host 'localhost'"),
        ("qemu+tcp:///system", "the 'tcp' transport"),
        ("qemu+ext:///system?command=/bin/x", "the 'ext' transport"),
    ],
)
def test_remote_connections_are_refused_naming_why(uri: str, named: str) -> None:
    refusal = uri_refusal(uri)
    assert refusal is not None
    assert named in refusal and uri in refusal and "local UNIX-socket connection" in refusal


def test_the_test_driver_has_no_screens() -> None:
    assert uri_refusal("test:///default") == "libvirt's test driver has no graphics to open"
    assert uri_refusal("test:///tmp/node.xml") is not None


def _domain(*graphics: str) -> str:
    devices = "".join(f"<graphics type='{kind}'/>" for kind in graphics)
    return f"<domain><name>d</name><devices><serial type='pty'/>{devices}</devices></domain>"


def test_vnc_index_counts_every_graphics_device_in_order() -> None:
    assert vnc_index(_domain("vnc")) == 0
    assert vnc_index(_domain("spice", "vnc")) == 1  # openGraphicsFD's idx counts SPICE too
    assert vnc_index(_domain("spice")) is None
    assert vnc_index(_domain()) is None
    assert vnc_index("<domain><name>d</name></domain>") is None


class _Domain:
    """A stand-in for ``libvirt.virDomain``: its XML, and what openGraphicsFD was asked."""

    def __init__(self, xml: str, peer: socket.socket | None = None) -> None:
        self.xml, self.peer = xml, peer
        self.asked: list[tuple[int, int]] = []

    def XMLDesc(self, flags: int) -> str:  # noqa: N802 (libvirt's name)
        return self.xml

    def openGraphicsFD(self, idx: int, flags: int) -> int:  # noqa: N802 (libvirt's name)
        self.asked.append((idx, flags))
        assert self.peer is not None
        return self.peer.detach()


def test_the_socket_is_libvirts_descriptor_opened_without_qemus_password() -> None:
    ours, theirs = socket.socketpair()
    dom = _Domain(_domain("spice", "vnc"), peer=theirs)
    with ours, open_vnc_socket(dom, "web-1") as screen:  # type: ignore[arg-type]
        assert dom.asked == [(1, libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)]
        assert screen.family == socket.AF_UNIX and screen.type == socket.SOCK_STREAM
        ours.sendall(b"RFB 003.008\n")
        assert screen.recv(12) == b"RFB 003.008\n"


def test_a_domain_without_vnc_is_refused_before_libvirt_is_asked() -> None:
    dom = _Domain(_domain("spice"))
    with pytest.raises(NoScreen, match=r"VM 'web-1' has no VNC graphics device.*<graphics type='vnc'>"):
        open_vnc_socket(dom, "web-1")  # type: ignore[arg-type]
    assert dom.asked == []
