"""The gateway as an RFB client of the VM's server (``handshake_with_vm``), against a
scripted server on a socket pair: each version, always shared, refusals as NoScreen."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tests.screen.scripted_server import PIXEL_FORMAT, Script, serve
from vmws.errors import NoScreen
from vmws.screen.vm_handshake import ServerInit, handshake_with_vm

pytestmark = pytest.mark.asyncio


async def run(script: Script) -> ServerInit:
    ours, theirs = socket.socketpair()
    server = asyncio.create_task(serve(theirs, script))
    reader, writer = await asyncio.open_connection(sock=ours)
    try:
        return await handshake_with_vm(reader, writer)
    finally:
        writer.close()
        await server


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        (b"RFB 003.008\n", b"RFB 003.008\n"),
        (b"RFB 003.889\n", b"RFB 003.008\n"),  # Apple's: later than 3.8, so 3.8
        (b"RFB 003.007\n", b"RFB 003.007\n"),
        (b"RFB 003.003\n", b"RFB 003.003\n"),
        (b"RFB 003.005\n", b"RFB 003.003\n"),  # unpublished versions count as 3.3
    ],
)
async def test_each_version_and_always_shared(offered: bytes, answered: bytes) -> None:
    script = Script(version=offered, security=b"\x02\x01")  # 3.3 servers name only the first
    if answered == b"RFB 003.003\n":
        script.security = b"\x01"
    init = await run(script)
    assert script.client_version == answered and script.shared == 1
    assert script.client_security == (None if answered == b"RFB 003.003\n" else 1)
    assert init == ServerInit(16, 8, PIXEL_FORMAT, b"scripted")
    assert init.encode() == struct.pack(">HH16sI", 16, 8, PIXEL_FORMAT, 8) + b"scripted"


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        (Script(security=b"\x02"), "offers RFB security types 2; vmws answers only None"),
        (Script(version=b"RFB 003.003\n", security=b"\x02"), "requires RFB security type 2"),
        (Script(security=b"", reason=b"too many\x1b[2J clients"), "refused the connection: 'too many?[2J clients'"),
        (Script(version=b"RFB 003.003\n", security=b"\x00", reason=b"no"), "refused the connection: 'no'"),
        (Script(result=1, reason=b""), "failed the security handshake: no reason given"),
        (Script(version=b"SSH-2.0-Open\n"[:12]), "broke the RFB handshake: not an RFB protocol version"),
        (Script(version=b"RFB 002.000\n"), "older than 3.3"),
        (Script(name_length=1 << 30), "a desktop name of 1073741824 bytes"),
    ],
)
async def test_refusals_are_no_screen(script: Script, problem: str) -> None:
    with pytest.raises(NoScreen, match=problem.replace("[", r"\[").replace("?", r"\?")):
        await run(script)


async def test_a_server_that_hangs_up_mid_handshake() -> None:
    ours, theirs = socket.socketpair()
    theirs.sendall(b"RFB 003.008\n")
    theirs.close()
    reader, writer = await asyncio.open_connection(sock=ours)
    with pytest.raises(NoScreen, match="closed the connection during the RFB handshake"):
        await handshake_with_vm(reader, writer)
    writer.close()


async def test_a_server_that_never_speaks_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vmws.screen.vm_handshake.HANDSHAKE_TIMEOUT", 0.05)
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    with pytest.raises(NoScreen, match="did not complete the RFB handshake within 0.05 s"):
        await handshake_with_vm(reader, writer)
    writer.close()
    theirs.close()
