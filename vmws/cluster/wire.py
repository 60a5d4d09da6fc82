"""Messages between nodes: a JSON header, a newline, then raw bytes (console data).

Every message carries ``v`` (the version of this format). A node refuses a message of a
version it does not speak, with a log line naming both. Everything read from Redis is
hostile: sizes, types and names are checked here, and a message that fails is dropped
with one log line (never a traceback).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

__all__ = [
    "VERSION",
    "MAX_HEADER_BYTES",
    "MAX_DATA_BYTES",
    "encode",
    "decode",
    "vm_key",
    "out_channel",
    "in_channel",
    "console_key",
    "reply_channel",
    "VMS_KEY",
    "field_str",
    "field_int",
]

log = logging.getLogger("vmws.cluster")

VERSION = 1
MAX_HEADER_BYTES = 4096
MAX_DATA_BYTES = 1024 * 1024  # one console batch: the channel reads at most this much at once
MAX_FIELD_CHARS = 255
VMS_KEY = "vmws:vms"  # set: every VM name that has a record


def vm_key(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}"


def out_channel(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}:out"


def in_channel(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}:in"


def console_key(vm: str) -> str:
    return f"vmws:vm:{{{vm}}}:con"


def reply_channel(node: str) -> str:
    return f"vmws:node:{node}:reply"


def encode(header: dict[str, Any], data: bytes = b"") -> bytes:
    return orjson.dumps({"v": VERSION, **header}) + b"\n" + data


def decode(raw: object, where: str) -> tuple[dict[str, Any], bytes] | None:
    """``(header, data)`` of a message, or None (logged) when it is not one we speak."""
    if not isinstance(raw, bytes):
        log.warning("dropped a message on %s: not bytes", where)
        return None
    head, sep, data = raw.partition(b"\n")
    if not sep or len(head) > MAX_HEADER_BYTES or len(data) > MAX_DATA_BYTES:
        log.warning("dropped a message on %s: malformed or over its size limits (%d bytes)", where, len(raw))
        return None
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError:
        log.warning("dropped a message on %s: its header is not JSON", where)
        return None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        log.warning("dropped a message on %s: no 'op'", where)
        return None
    version = header.get("v")
    if version != VERSION:
        log.warning("refused a message of version %.20r on %s: this node speaks version %d", version, where, VERSION)
        return None
    return header, data


def field_str(header: dict[str, Any], name: str, limit: int = MAX_FIELD_CHARS) -> str:
    """A string field of at most ``limit`` characters (ValueError otherwise)."""
    value = header.get(name)
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"field {name!r} is not a string of at most {limit} characters")
    return value


def field_int(header: dict[str, Any], name: str) -> int:
    value = header.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"field {name!r} is not a whole number in range")
    return value
