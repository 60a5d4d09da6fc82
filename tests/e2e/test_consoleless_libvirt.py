"""A console request on libvirt's ``test:///`` driver (which has no consoles): 4005, never 1011."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.test_libvirt_testdriver import driver_uri
from tests.e2e.client import SECRET, client, ws_url
from tests.e2e.test_hostile_handshake import assert_no_error_logged, refusal
from tests.harness.hosts import LIBVIRT_GROUP, require_libvirt
from vmws.app import Server
from vmws.config import Config

pytestmark = [pytest.mark.asyncio, pytest.mark.libvirt, LIBVIRT_GROUP]


async def test_libvirt_test_driver_console_is_refused_with_4005(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_libvirt()
    from vmws.backends.libvirt.backend import LibvirtBackend

    server = Server(Config(port=0, jwt_secret=SECRET, backend="libvirt"), LibvirtBackend(uri=driver_uri(tmp_path)))
    await server.start()
    try:
        first, close, _ = await refusal(ws_url(server, "td-running", console=True))
        assert first is not None and "no consoles" in first["data"]["message"] and close == 4005
        async with client(server, "td-running") as c:  # monitoring works on the same backend
            assert (await c.recv())["type"] == "connection"
    finally:
        await server.stop()
    assert_no_error_logged(caplog)
