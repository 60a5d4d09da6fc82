"""Hostile screen viewers against the simulator's RFB server, through the real gateway."""

from __future__ import annotations

import struct

import pytest

from tests.screen.gateway import gateway, viewer
from tests.screen.test_simulated_screen import last_line, shows

pytestmark = pytest.mark.asyncio


async def test_extended_clipboard_cut_text_keeps_the_simulators_stream_in_step() -> None:
    """ClientCutText with a negative length is the extended clipboard's form: its body is
    |length| bytes, and the gateway relays it so. Read as unsigned, the simulator skipped
    the next 4 GiB of the viewer's stream: every later key and update request was lost."""
    async with gateway() as server, viewer(server, "my-vm") as client:
        await client.transport.write(struct.pack(">BxxxI", 6, -5 & 0xFFFFFFFF) + b"\x00\x00\x00\x01x")
        await client.type_text("admin\n")
        await shows(client, lambda lines: last_line(lines) == "Password:")
