"""Viewers of a simulated VM's screen, over the socket ``Simulator.open_screen`` returns,
with the tests' RFB client (no test_ prefix: not collected).

The simulator runs on a ``VirtualClock`` and serves its screens on the test's event
loop; every picture is asked for (a full update is always answered at once), so no
test waits on wall-clock time.
"""

from __future__ import annotations

import asyncio

from simulator.clock import VirtualClock
from simulator.engine import Simulator
from simulator.screen.font import read_text
from tests.rfb_client import RFBClient, StreamTransport


def simulator(seed: int = 0) -> tuple[Simulator, VirtualClock]:
    clock = VirtualClock()
    return Simulator(clock, seed=seed, reactor=asyncio.get_running_loop()), clock


async def viewer(sim: Simulator, name: str = "my-vm") -> RFBClient:
    return await RFBClient.connect(await StreamTransport.over_socket(sim.open_screen(name)))


async def picture(client: RFBClient) -> list[str]:
    """The whole screen as text, after a full update (answered at once, frozen or not)."""
    await client.request_update(incremental=False)
    await client.read_update()
    return text(client)


def text(client: RFBClient) -> list[str]:
    return [line.rstrip() for line in read_text(client.framebuffer, client.width, client.height)]


def last_lines(lines: list[str]) -> list[str]:
    """The screen's rows without the empty ones at the bottom."""
    end = len(lines)
    while end and not lines[end - 1]:
        end -= 1
    return lines[:end]


async def log_in(client: RFBClient) -> list[str]:
    await client.type_text("admin\n")
    await client.type_text("admin\n")
    return await picture(client)
