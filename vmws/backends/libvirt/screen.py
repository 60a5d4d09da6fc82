"""A VM's screen on libvirt: a connected socket to QEMU's own VNC server.

``virDomainOpenGraphicsFD`` asks QEMU (QMP ``add_client``) to take one end of a new
socket pair as a VNC client and hands the other end back, so the gateway reaches the
screen without any TCP port: the harness's guests listen on no address at all
(``<listen type='none'/>``). ``VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH`` makes QEMU skip its
own VNC password for this client (the gateway has authenticated the viewer already),
so QEMU offers RFB security type None.

The descriptor travels in a UNIX-socket message (``SCM_RIGHTS``) from libvirtd to us:
only a local connection over a UNIX socket can carry it, so a URI naming a host or a
network transport is refused before libvirt is asked, with a message saying so, and so
is libvirt's ``test:///`` driver, which has no graphics to open.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import xml.etree.ElementTree as ET

import libvirt

from vmws.errors import NoScreen

__all__ = ["uri_refusal", "vnc_index", "open_vnc_socket"]

# Transports that reach libvirtd over its local UNIX socket ("" is the default one).
_LOCAL_TRANSPORTS = frozenset({"", "unix"})


def uri_refusal(uri: str) -> str | None:
    """Why a libvirt connection to ``uri`` cannot open a screen; None when it can."""
    parts = urllib.parse.urlsplit(uri)
    driver, _, transport = parts.scheme.partition("+")
    if driver == "test":
        return "libvirt's test driver has no graphics to open"
    if parts.hostname or transport not in _LOCAL_TRANSPORTS:
        where = f"host {parts.hostname!r}" if parts.hostname else f"the {transport!r} transport"
        return (
            f"the libvirt connection {uri} goes to {where}, and a screen's socket passes "
            f"only over a local UNIX-socket connection: serve this VM from a vmws on its own host"
        )
    return None


def vnc_index(domain_xml: str) -> int | None:
    """Position of the first VNC device among the domain's ``<graphics>``; None without one.

    ``openGraphicsFD`` counts every graphics device (SPICE, RDP, ...), in XML order.
    """
    devices = ET.fromstring(domain_xml).find("devices")
    graphics = [] if devices is None else devices.findall("graphics")
    return next((i for i, device in enumerate(graphics) if device.get("type") == "vnc"), None)


def open_vnc_socket(dom: libvirt.virDomain, name: str) -> socket.socket:
    """A connected socket to ``dom``'s VNC server (blocking: run it off the event loop).

    ``NoScreen`` when the domain has no VNC device; libvirt's own errors (a domain that
    is not running: ``VIR_ERR_OPERATION_INVALID``) are left to the caller to translate.
    """
    index = vnc_index(dom.XMLDesc(0))
    if index is None:
        raise NoScreen(
            f"VM {name!r} has no VNC graphics device, so it has no screen to show: "
            f"add <graphics type='vnc'> (and a video card) to its domain"
        )
    fd = dom.openGraphicsFD(index, libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)
    try:
        return socket.socket(fileno=fd)  # family and type read from the descriptor
    except OSError:
        os.close(fd)
        raise
