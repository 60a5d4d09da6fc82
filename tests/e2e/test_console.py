"""The console endpoint end to end: shared console, scrollback, login, eof."""

from __future__ import annotations

import pytest

from tests.e2e.client import client, running_server, token

pytestmark = pytest.mark.asyncio


async def login(c, name: str) -> None:  # type: ignore[no-untyped-def]
    await c.send("console_input", {"content": "\n"})
    await c.read_console_until("login: ")
    await c.send("console_input", {"content": "admin\n"})
    await c.read_console_until("Password: ")
    await c.send("console_input", {"content": "admin\n"})
    await c.read_console_until(f"admin@{name}:~$ ")


async def test_connection_then_scrollback_then_full_login() -> None:
    async with running_server() as server, client(server, "web-1", console=True) as c:
        assert (await c.recv())["type"] == "connection"
        await login(c, "web-1")
        await c.send("console_input", {"content": "hostname\n"})
        assert "web-1" in await c.read_console_until("$ ")
        await c.send("console_input", {"content": "frobnicate\n"})
        assert "frobnicate: command not found" in await c.read_console_until("$ ")


async def test_password_is_not_echoed() -> None:
    async with running_server() as server, client(server, "web-4", console=True) as c:
        await c.send("console_input", {"content": "\n"})
        await c.read_console_until("login: ")
        await c.send("console_input", {"content": "admin\n"})
        await c.read_console_until("Password: ")
        await c.send("console_input", {"content": "hunter2secret\n"})
        seen = await c.read_console_until("login: ")
        assert "hunter2secret" not in seen and "Login incorrect" in seen


async def test_two_viewers_share_input_and_output_and_late_viewer_gets_scrollback() -> None:
    async with running_server() as server, client(server, "web-5", console=True) as a:
        async with client(server, "web-5", console=True) as b:
            await login(a, "web-5")
            await b.read_console_until("admin@web-5:~$ ")  # b saw a's login happen
            await b.send("console_input", {"content": "echo shared-$((6*7))\n"})
            assert "shared-" in await a.read_console_until("$ ")
        async with client(server, "web-5", console=True) as late:
            await late.recv("connection")
            replay = (await late.recv("console"))["data"]
            assert "echo shared-" in replay["content"] and replay["offset"] >= 0


async def test_console_refusals() -> None:
    async with running_server() as server:
        async with client(server, "db-1", console=True) as c:
            error = await c.recv()
            assert error["data"]["code"] == "VM_NOT_RUNNING"
            assert (await c.closed())[0] == 4009
        async with client(server, "my-vm", console=True, tok=token(["read", "control"])) as c:
            assert (await c.recv())["data"]["code"] == "AUTH_ERROR"
            assert (await c.closed())[0] == 4003
        async with client(server, "ghost", console=True) as c:
            assert (await c.recv())["data"]["code"] == "VM_NOT_FOUND"
            assert (await c.closed())[0] == 4004
        async with client(server, "my-vm", console=True) as c:
            await c.recv("connection")
            await c.send("command", {"action": "stop", "requestId": "x"}, malformed=True)
            error = (await c.recv("error"))["data"]
            assert error["code"] == "INVALID_COMMAND" and error["requestId"] == "x"


async def test_restart_keeps_viewers_and_stop_sends_eof() -> None:
    async with (
        running_server() as server,
        client(server, "web-2", console=True) as viewer,
        client(server, "web-2") as monitor,
    ):
        await viewer.recv("connection")
        assert (await monitor.command("restart", "re"))["success"] is True
        await viewer.read_console_until("login: ")  # the boot log flowed to the same socket
        assert (await monitor.command("stop", "st"))["success"] is True
        while True:
            message = (await viewer.recv("console"))["data"]
            if message["eof"]:
                assert message["content"] == ""
                break
        assert (await viewer.closed())[0] == 1000
