"""The graphical console of a real guest: QEMU's VNC server through ``openGraphicsFD``.

One tiny guest boots for the module (TCG boot is the cost) and a headless one is
defined beside it. The backend's ``open_screen`` gives a socket that speaks RFB: the
VGA text console (tty1) arrives as a full framebuffer update, keys typed on it change
the picture, and a login on tty1 reaches a shell. The proof that the shell took the
login is read on the serial console, not from pixels: the command typed on the screen
writes ``$(id -un) $(tty)`` to a file in /tmp, and a serial login prints it, so the
assertion is the exact text ``admin /dev/tty1`` (the user and the terminal that ran it).
Then ``vmws serve --backend libvirt`` relays the same screen over ``/ws/vms/NAME/screen``.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.contract.suite import LOGIN, PASSWORD, PROMPT, ConsoleReader, type_keys, wait_for_change
from tests.e2e_libvirt.server import URI, start_server, stop_server, token
from tests.harness.daemon import LIBVIRTD
from tests.harness.hosts import LIBVIRT_GROUP, guests_up, vm_prefix
from tests.harness.terminal import QueryAnsweringStream
from tests.rfb_client import KEY_BACKSPACE, RFBClient, StreamTransport, WebSocketTransport
from vmws.backend import Action, VMStatus
from vmws.backends.libvirt.backend import LibvirtBackend
from vmws.codes import CloseCode
from vmws.errors import NoScreen, VMNotRunning

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]

PREFIX = vm_prefix("scr")
GUEST, HEADLESS, LOCKED = f"{PREFIX}g", f"{PREFIX}headless", f"{PREFIX}locked"
BOOT = 180.0
STEP = 30.0
PROOF = "/tmp/vmws-screen-proof"


def save_png(client: RFBClient, path: Path) -> None:
    """The framebuffer as a PNG, for a person reading a failure (pytest keeps tmp_path)."""
    pixels = client.framebuffer  # R, G, B, unused: the client's pixel format
    rgb = bytearray(len(pixels) // 4 * 3)
    for channel in range(3):
        rgb[channel::3] = pixels[channel::4]
    stride = client.width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(client.height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", client.width, client.height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def guests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    stopped = ("--no-start",)
    with guests_up(URI, {GUEST: (), HEADLESS: (*stopped, "--no-screen"), LOCKED: stopped}):
        _set_vnc_password(LOCKED, "s3cretpw", tmp_path_factory.mktemp("locked") / "domain.xml")
        yield


def _set_vnc_password(name: str, password: str, path: Path) -> None:
    """Give the (stopped) domain's VNC server a password (VNC allows 8 characters at most)."""
    with LIBVIRTD.steady():
        xml = subprocess.run(
            ["virsh", "-c", URI, "dumpxml", name, "--security-info"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        path.write_text(xml.replace("<graphics type='vnc'", f"<graphics type='vnc' passwd='{password}'", 1))
        subprocess.run(
            ["virsh", "-c", URI, "define", str(path), "--validate"], capture_output=True, check=True, timeout=60
        )


@pytest_asyncio.fixture
async def backend(guests: None) -> AsyncIterator[LibvirtBackend]:
    backend = LibvirtBackend(uri=URI, vm_filter=f"{PREFIX}*", stop_timeout=30.0)
    await backend.start()
    yield backend
    await backend.close()


async def _serial_login(reader: ConsoleReader) -> None:
    """From wherever the serial console is (booting, at login, in a shell) to a prompt."""
    await reader.send(b"\n")
    match = await reader.expect(LOGIN + b"|" + PROMPT, BOOT)
    if match.group(0).rstrip().endswith(b":"):
        await reader.send(b"admin\n")
        await reader.expect(PASSWORD, STEP)
        await reader.send(b"admin\n")
        await reader.expect(PROMPT, STEP)


@pytest.mark.asyncio
async def test_a_stopped_guest_has_no_screen_and_a_headless_one_is_refused_clearly(backend: LibvirtBackend) -> None:
    with pytest.raises(VMNotRunning, match=r"is stopped"):
        await backend.open_screen(HEADLESS)
    info = await asyncio.wait_for(backend.perform(HEADLESS, Action.START), STEP)
    assert info.status is VMStatus.RUNNING
    try:
        with pytest.raises(NoScreen, match=rf"VM '{HEADLESS}' has no VNC graphics device.*<graphics type='vnc'>"):
            await backend.open_screen(HEADLESS)
    finally:
        await asyncio.wait_for(backend.perform(HEADLESS, Action.STOP, force=True), STEP)


@pytest.mark.asyncio
async def test_a_guest_with_a_vnc_password_is_opened_without_it(backend: LibvirtBackend) -> None:
    # SKIPAUTH: QEMU offers this client security type None (without it, only VNC
    # authentication, type 2, which the gateway does not answer); RFBClient insists on None.
    await asyncio.wait_for(backend.perform(LOCKED, Action.START), STEP)
    try:
        client = await RFBClient.connect(await StreamTransport.over_socket(await backend.open_screen(LOCKED)))
        try:
            assert client.name == f"QEMU ({LOCKED})"
            await client.request_update(incremental=False)
            await asyncio.wait_for(client.read_update(), STEP)
        finally:
            await client.close()
    finally:
        await asyncio.wait_for(backend.perform(LOCKED, Action.STOP, force=True), STEP)


@pytest.mark.asyncio
async def test_screen_shows_tty1_keys_change_it_and_a_login_there_reaches_a_shell(
    backend: LibvirtBackend, tmp_path: Path
) -> None:
    serial = ConsoleReader(QueryAnsweringStream(await backend.open_console(GUEST)))
    try:
        # Booted: the serial login is up, and with it the one on tty1 (init starts both).
        await _serial_login(serial)

        opened = time.monotonic()
        client = await RFBClient.connect(await StreamTransport.over_socket(await backend.open_screen(GUEST)))
        try:
            await client.request_update(incremental=False)
            await asyncio.wait_for(client.read_update(), STEP)
            first_update = time.monotonic() - opened
            print(f"\nopen_screen to the first full framebuffer update: {first_update * 1000:.0f} ms")
            save_png(client, tmp_path / "login.png")
            assert client.server_version == b"RFB 003.008\n"
            assert (client.width, client.height) == (720, 400), "VGA text mode, 80x25 cells of 9x16"
            assert not client.is_blank(), f"a blank screen: {tmp_path / 'login.png'}"

            before = bytes(client.framebuffer)
            await type_keys(client, "admin")
            # Five letters echoed at the login prompt: five columns or more change.
            assert await wait_for_change(client, before, 5, STEP) >= 5

            await type_keys(client, f"\nadmin\necho $(id -un) $(tty) >{PROOF}\n")
            await serial.send(f"while [ ! -s {PROOF} ]; do sleep 0.2; done; cat {PROOF}\n".encode())
            await serial.expect(rb"\r\nadmin /dev/tty1\r\n", STEP)
            await client.request_update(incremental=False)
            await asyncio.wait_for(client.read_update(), STEP)
            save_png(client, tmp_path / "shell.png")
        finally:
            await client.close()
    finally:
        await serial.close()


@pytest.mark.asyncio
async def test_the_gateway_relays_the_guests_screen_and_keys(backend: LibvirtBackend) -> None:
    serial = ConsoleReader(QueryAnsweringStream(await backend.open_console(GUEST)))
    try:
        await serial.send(b"\n")  # booted: its logins are up (the picture holds still)
        await serial.expect(LOGIN + b"|" + PROMPT, BOOT)
    finally:
        await serial.close()
    proc, url = start_server(f"{PREFIX}*")
    try:
        screen_url = f"{url}/ws/vms/{GUEST}/screen?token={token('read', 'console')}"
        async with connect(screen_url, subprotocols=[Subprotocol("binary")], max_size=None) as ws:
            client = await asyncio.wait_for(RFBClient.connect(WebSocketTransport(ws)), STEP)
            assert (client.width, client.height) == (720, 400)
            assert client.name == f"QEMU ({GUEST})"  # QEMU's own ServerInit, relayed
            await client.request_update(incremental=False)
            await asyncio.wait_for(client.read_update(), STEP)
            assert not client.is_blank()
            before = bytes(client.framebuffer)
            await type_keys(client, "vmwsgate")  # echoed at tty1's login or shell prompt
            await wait_for_change(client, before, 5, STEP)
            for _ in "vmwsgate":
                await client.press(KEY_BACKSPACE)
        # A stopped VM: the upgrade, then 4009, as on the console endpoint.
        stopped_url = f"{url}/ws/vms/{HEADLESS}/screen?token={token('read', 'console')}"
        async with connect(stopped_url, subprotocols=[Subprotocol("binary")]) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), STEP)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.VM_NOT_RUNNING
    finally:
        stop_server(proc)
