"""Which hypervisor host a libvirt connection reaches: its identity, not its URI.

Two URIs may name one host (``qemu:///system`` here and ``qemu+ssh://me@here/system``
elsewhere), so a host is known by the UUID libvirt reports for it: the capabilities'
``<host><uuid>`` (the machine's SMBIOS UUID), else ``getSysinfo``'s. A ``test:///``
connection is a private in-process hypervisor of the process that opens it: its host is
node-local, so its id names the node as well as the URI.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["host_identity", "is_node_local"]

_UUID = re.compile(r"^[0-9a-fA-F-]{16,64}$")


def is_node_local(uri: str) -> bool:
    return uri.startswith("test:")


def _uuid_in(xml: str, path: str) -> str | None:
    try:
        element = ET.fromstring(xml).find(path)
    except ET.ParseError:
        return None
    text = (element.text or "").strip() if element is not None else ""
    return text.lower() if _UUID.match(text) else None


def host_identity(conn: Any, uri: str, node: str) -> str:
    """The id of the host ``conn`` (opened on ``uri``) reaches; blocking (thread pool)."""
    if is_node_local(uri):
        return f"local:{node}:{uri}"
    found = None
    try:
        found = _uuid_in(conn.getCapabilities(), "./host/uuid")
    except Exception:  # libvirt.libvirtError: the fallbacks below
        found = None
    if found is None:
        try:
            found = _uuid_in(conn.getSysinfo(0), "./system/entry[@name='uuid']")
        except Exception:
            found = None
    if found is None:
        # No UUID reported: the URI is all there is (documented: give such hosts one URI).
        return f"uri:{uri}"
    return f"uuid:{found}"
