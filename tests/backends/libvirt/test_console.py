"""``LibvirtConsole``'s bounds, on a stand-in stream (the real ones are in
``tests/e2e_libvirt/test_console_flood.py`` and the QEMU contract): output held for the
hub is held up to ``READ_LIMIT`` and the rest dropped, and typed input the guest does
not take is capped at ``PENDING_LIMIT``, dropped beyond and logged once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.harness.hosts import require_libvirt

pytestmark = pytest.mark.libvirt


class FakeStream:
    """A non-blocking stream: ``incoming`` is what the guest printed, ``send`` takes nothing."""

    def __init__(self, incoming: int) -> None:
        self.incoming = incoming
        self.events: list[int] = []
        self._o = None

    def recv(self, size: int) -> bytes | int:
        if not self.incoming:
            return -2  # try again
        n = min(size, self.incoming)
        self.incoming -= n
        return b"x" * n

    def send(self, _data: bytes) -> int:
        return -2  # the guest takes no input

    def eventUpdateCallback(self, events: int) -> None:  # noqa: N802 (libvirt's name)
        self.events.append(events)

    def eventRemoveCallback(self) -> None:  # noqa: N802
        pass

    def abort(self) -> None:
        pass


class FakeLibvirtmod:
    def virStreamEventAddCallback(self, _o: Any, events: int, _data: Any) -> int:  # noqa: N802
        return 0


@pytest.fixture
def console_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    require_libvirt()
    import vmws.backends.libvirt.console as module

    monkeypatch.setattr(module, "_libvirtmod", FakeLibvirtmod())
    return module


async def _console(module: Any, stream: FakeStream) -> Any:
    async def opener() -> FakeStream:
        return stream

    async def release(_stream: object) -> None:
        pass

    console = module.LibvirtConsole("vm", opener, release)
    await console.attach()
    return console


@pytest.mark.asyncio
async def test_output_nobody_takes_is_held_up_to_the_limit_and_the_rest_dropped(
    console_module: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import libvirt

    limit = console_module.READ_LIMIT
    stream = FakeStream(incoming=10 * limit)
    console = await _console(console_module, stream)
    with caplog.at_level(logging.INFO, logger=console_module.__name__):
        console._on_event(stream, libvirt.VIR_STREAM_EVENT_READABLE, None)
        # libvirt is drained (its client library would queue without bound otherwise),
        # but only up to the limit is held for the hub
        assert stream.incoming == 0
        assert limit <= console._queued < limit + 64 * 1024
        assert stream.events == [] or stream.events[-1] & libvirt.VIR_STREAM_EVENT_READABLE
        taken = 0
        while console._queued:
            taken += len(await console.read())
        assert limit <= taken < limit + 64 * 1024
        # the guest prints again: held again, up to the limit
        stream.incoming = 1000
        console._on_event(stream, libvirt.VIR_STREAM_EVENT_READABLE, None)
        assert await console.read() == b"x" * 1000
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.WARNING, logging.INFO]  # once when it starts, once after
    await console.close()


@pytest.mark.asyncio
async def test_typed_input_the_guest_does_not_take_is_capped_and_logged_once(
    console_module: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stream = FakeStream(incoming=0)
    console = await _console(console_module, stream)
    with caplog.at_level(logging.INFO, logger=console_module.__name__):
        for _ in range(100):
            await console.write(b"y" * 1024)
    assert len(console._pending) == console_module.PENDING_LIMIT
    assert 4 * 1024 <= console_module.PENDING_LIMIT <= 64 * 1024
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    await console.close()
