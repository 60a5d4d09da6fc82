"""Over a real socket (a real Tornado server, the ``websockets`` client): a paused VM's
console takes no new viewer (4009) but keeps those attached, and a megabyte typed at
it is held as a tty would hold it — 4 KiB, the rest dropped."""

from __future__ import annotations

import pytest

from simulator.console import MAX_INPUT
from tests.e2e.client import Client, client, running_server

pytestmark = pytest.mark.asyncio


async def login(c: Client, name: str) -> None:
    await c.send("console_input", {"content": "\n"})
    await c.read_console_until("login: ")
    await c.send("console_input", {"content": "admin\nadmin\n"})
    await c.read_console_until(f"admin@{name}:~$ ")


async def test_a_new_console_of_a_paused_vm_is_refused_with_4009() -> None:
    async with running_server() as server, client(server, "batch-1", console=True) as c:  # paused in the demo
        error = await c.recv()
        assert error["type"] == "error" and error["data"]["code"] == "VM_NOT_RUNNING"
        assert "paused" in error["data"]["message"]
        assert (await c.closed())[0] == 4009


async def test_input_typed_at_a_paused_vm_is_bounded_and_the_viewer_stays() -> None:
    async with (
        running_server() as server,
        client(server, "web-3", console=True) as viewer,
        client(server, "web-3") as monitor,
    ):
        await viewer.recv("connection")
        await login(viewer, "web-3")
        assert (await monitor.command("pause", "p"))["success"] is True
        for _ in range(20):  # 1 MB typed at a frozen guest, in messages under the 64 KiB cap
            await viewer.send("console_input", {"content": "x" * 50_000})
        assert (await monitor.command("resume", "r"))["success"] is True
        await viewer.send("console_input", {"content": "\x03"})
        seen = await viewer.read_console_until("^C\r\n")
        assert seen.count("x") == MAX_INPUT - 1  # the line holds 4 KiB less room for Enter
        await viewer.send("console_input", {"content": "echo still-here\n"})
        await viewer.read_console_until("echo still-here\r\nstill-here\r\nadmin@web-3:~$ ")


async def test_a_second_viewer_of_a_console_already_open_is_refused_while_paused() -> None:
    # The hub keeps one channel per VM: a new viewer must be refused even though the
    # channel (opened before the pause) exists, while the attached viewer stays.
    async with (
        running_server() as server,
        client(server, "web-4", console=True) as first,
        client(server, "web-4") as monitor,
    ):
        await first.recv("connection")
        assert (await monitor.command("pause", "p"))["success"] is True
        async with client(server, "web-4", console=True) as second:
            error = await second.recv()
            assert error["type"] == "error" and error["data"]["code"] == "VM_NOT_RUNNING"
            assert (await second.closed())[0] == 4009
        assert (await monitor.command("resume", "r"))["success"] is True
        await first.send("console_input", {"content": "\n"})
        await first.read_console_until("login: ")
