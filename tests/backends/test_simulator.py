"""SimulatorBackend: the asyncio adapter over the simulator engine."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from simulator.clock import LoopClock, VirtualClock
from simulator.scenario import parse_scenario
from vmws.backend import Action, ConsoleStream, VMStatus
from vmws.backends import load_backend_class
from vmws.backends.simulator import SimulatorBackend
from vmws.errors import CommandFailed, VMNotFound, VMNotRunning


async def read_until(stream: ConsoleStream, marker: bytes, timeout: float = 5.0) -> bytes:
    out = b""
    async with asyncio.timeout(timeout):
        while marker not in out:
            chunk = await stream.read()
            assert chunk, f"eof before {marker!r}: {out[-200:]!r}"
            out += chunk
    return out


async def logged_in(name: str) -> tuple[SimulatorBackend, ConsoleStream]:
    """A demo-fleet backend on a virtual clock and a console logged in to ``name``."""
    backend = SimulatorBackend(VirtualClock())
    await backend.start()
    stream = await backend.open_console(name)
    await stream.write(b"admin\nadmin\n")
    await read_until(stream, b"$ ")
    return backend, stream


def test_registered_as_sim() -> None:
    assert load_backend_class("sim") is SimulatorBackend


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimulatorBackend(speed=0)
    bad = tmp_path / "bad.toml"
    bad.write_text("[[vm]]\nname = 'a'\nstatus = 'exploded'\n")
    with pytest.raises(ValueError, match=r"bad\.toml:3: vm 'a': status must be one of"):
        SimulatorBackend(scenario=bad)
    with pytest.raises(ValueError, match="cannot read"):
        SimulatorBackend(scenario=tmp_path / "missing.toml")


def test_methods_before_start_say_so() -> None:
    with pytest.raises(RuntimeError, match="start"):
        SimulatorBackend().subscribe(lambda info: None)


@pytest.mark.asyncio
async def test_start_builds_a_sped_up_loop_clock_and_a_scenario_fleet(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text("[[vm]]\nname = 'solo'\nstatus = 'stopped'\n")
    backend = SimulatorBackend(scenario=path, speed=40.0)
    await backend.start()
    try:
        clock = backend.simulator.clock
        assert isinstance(clock, LoopClock) and clock.speed == 40.0
        assert [(i.name, i.status) for i in await backend.list()] == [("solo", VMStatus.STOPPED)]
        info = await backend.perform("solo", Action.START)  # done at power-on
        assert info.status is VMStatus.RUNNING and info.uptime < 0.1
        loop = asyncio.get_running_loop()
        began = loop.time()
        stream = await backend.open_console("solo")
        await read_until(stream, b"solo login: ")
        # the rest of a 1.2-1.8 s boot at 40x is at most 45 ms of real time
        assert loop.time() - began < 1.0
        await stream.close()
    finally:
        await backend.close()


@pytest.mark.asyncio
async def test_perform_waits_for_a_virtual_clock() -> None:
    clock = VirtualClock()
    backend = SimulatorBackend(clock, seed=1)
    await backend.start()
    task = asyncio.create_task(backend.perform("my-vm", Action.RESTART))
    await asyncio.sleep(0)
    assert not task.done()  # the guest's shutdown lines take 0.4 s ± 20 % of clock time
    clock.advance(0.3)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.2)
    info = await asyncio.wait_for(task, 1.0)
    assert info.status is VMStatus.RUNNING and info.uptime == 0.0


@pytest.mark.asyncio
async def test_actions_on_one_vm_queue_even_after_a_cancelled_waiter() -> None:
    backend = SimulatorBackend(speed=50.0)
    await backend.start()
    try:
        first = asyncio.create_task(backend.perform("db-1", Action.START))
        await asyncio.sleep(0)
        first.cancel()
        # the start goes on in the simulator; a stop now waits for it instead of failing "busy"
        info = await asyncio.wait_for(backend.perform("db-1", Action.STOP), 5.0)
        assert info.status is VMStatus.STOPPED
        results = await asyncio.gather(
            backend.perform("web-1", Action.PAUSE),
            backend.perform("web-1", Action.RESUME),
            backend.perform("web-1", Action.SUSPEND),
        )
        assert [r.status for r in results] == [VMStatus.PAUSED, VMStatus.RUNNING, VMStatus.SUSPENDED]
        with pytest.raises(VMNotFound):
            await backend.perform("nope", Action.START)
    finally:
        await backend.close()


@pytest.mark.asyncio
async def test_console_read_coalesces_and_waits() -> None:
    backend = SimulatorBackend(VirtualClock())
    await backend.start()
    stream = await backend.open_console("my-vm")
    assert await stream.read() == b"\r\nUbuntu 22.04.4 LTS my-vm ttyS0\r\n\r\nmy-vm login: "
    pending = asyncio.create_task(stream.read())
    await asyncio.sleep(0.01)
    assert not pending.done()
    await stream.write(b"ad")
    assert await asyncio.wait_for(pending, 1.0) == b"ad"
    for key in (b"m", b"i", b"n", b"\n"):
        await stream.write(key)
    assert await stream.read() == b"min\r\nPassword: "  # everything buffered, in one read
    await stream.close()
    assert await stream.read() == b""
    await stream.write(b"dropped")  # after close: nowhere to go, no error


@pytest.mark.asyncio
async def test_close_wakes_a_pending_read_and_backend_close_ends_streams() -> None:
    backend = SimulatorBackend(VirtualClock())
    await backend.start()
    one, two = await backend.open_console("web-1"), await backend.open_console("web-2")
    await one.read(), await two.read()
    pending = asyncio.create_task(one.read())
    await asyncio.sleep(0)
    await one.close()
    assert await asyncio.wait_for(pending, 1.0) == b""
    waiting = asyncio.create_task(two.read())
    await asyncio.sleep(0)
    await backend.close()
    assert await asyncio.wait_for(waiting, 1.0) == b""


@pytest.mark.asyncio
async def test_console_refused_when_not_running() -> None:
    backend = SimulatorBackend(VirtualClock())
    await backend.start()
    for name in ("db-1", "batch-1", "cache-1", "legacy-1"):  # stopped, paused, suspended, error
        with pytest.raises(VMNotRunning):
            await backend.open_console(name)
    with pytest.raises(VMNotFound):
        await backend.open_console("nope")


@pytest.mark.asyncio
async def test_a_yes_flood_comes_in_bounded_chunks_without_starving_the_loop() -> None:
    backend, stream = await logged_in("web-3")
    await stream.write(b"yes\n")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beside = asyncio.create_task(ticker())
    total = 0
    for _ in range(100):
        chunk = await stream.read()
        assert 0 < len(chunk) <= 64 * 1024 + 64
        total += len(chunk)
    beside.cancel()
    assert total > 5_000_000
    assert ticks >= 50  # the flood yielded to other tasks
    tap_buffer = backend.simulator.machine("web-3").readers[0].buffered
    assert tap_buffer == 0  # produced only as read: nothing piles up
    await stream.write(b"\x03")
    tail = await read_until(stream, b"web-3:~$ ")
    assert tail.endswith(b"^C\r\nadmin@web-3:~$ ")


@pytest.mark.asyncio
async def test_seq_output_is_exact_across_reads() -> None:
    _, stream = await logged_in("web-4")
    await stream.write(b"seq 100000\n")
    out = await read_until(stream, b"100000\r\nadmin@web-4:~$ ")
    assert out == b"seq 100000\r\n" + b"".join(b"%d\r\n" % i for i in range(1, 100001)) + b"admin@web-4:~$ "


@pytest.mark.asyncio
async def test_listeners_see_changes_made_through_the_backend() -> None:
    backend = SimulatorBackend(speed=50.0)
    await backend.start()
    seen: list[tuple[str, VMStatus]] = []
    unsubscribe = backend.subscribe(lambda info: seen.append((info.name, info.status)))
    try:
        await backend.perform("batch-1", Action.RESUME)
        await backend.perform("cache-1", Action.STOP)
        assert seen == [("batch-1", VMStatus.RUNNING), ("cache-1", VMStatus.STOPPED)]
        sample = await backend.sample("cache-1")
        assert (sample.cpu_utilization, sample.memory_used, sample.memory_total) == (0.0, 0, 4096 << 20)
    finally:
        unsubscribe()
        await backend.close()


SCRIPTED = """
[[vm]]
name = "app"
timings = { shutdown_timeout = "60s" }

[[event]]
at = "0s"
vm = "app"
event = "hang-on-shutdown"

[[event]]
at = "1s"
vm = "app"
event = "fail-next-command"
action = "pause"
message = "the hypervisor said no"
"""


@pytest.mark.asyncio
async def test_scripted_failures_and_a_forced_stop_through_the_backend(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    backend = SimulatorBackend(clock, fleet=parse_scenario(SCRIPTED))
    await backend.start()
    caplog.set_level(logging.INFO, logger="simulator")
    clock.advance(2)
    with pytest.raises(CommandFailed, match="the hypervisor said no"):
        await backend.perform("app", Action.PAUSE)
    graceful = asyncio.create_task(backend.perform("app", Action.STOP))
    await asyncio.sleep(0)
    clock.advance(30)
    await asyncio.sleep(0)
    assert not graceful.done()  # the shutdown hangs
    forced = asyncio.create_task(backend.perform("app", Action.STOP, force=True))
    await asyncio.sleep(0)
    clock.advance(0.2)  # it cuts in: a power-off takes 0.1 s, not the hang's 60
    assert (await asyncio.wait_for(forced, 1.0)).status is VMStatus.STOPPED
    assert (await asyncio.wait_for(graceful, 1.0)).status is VMStatus.STOPPED
    assert "app fault: graceful shutdown hangs (a stop job ignores SIGTERM)" in caplog.messages
    assert any(m.startswith("app timeline: fail-next-command") for m in caplog.messages)
    await backend.close()


@pytest.mark.asyncio
async def test_a_stuck_boot_starts_running_and_a_graceful_stop_is_forced_through_the_backend() -> None:
    clock = VirtualClock()
    fleet = parse_scenario(
        '[[vm]]\nname = "s"\nstatus = "stopped"\n[[event]]\nat = "0s"\nvm = "s"\nevent = "stuck-booting"\n'
    )
    backend = SimulatorBackend(clock, fleet=fleet)
    await backend.start()
    clock.advance(0)
    info = await asyncio.wait_for(backend.perform("s", Action.START), 1.0)  # done at power-on
    assert info.status is VMStatus.RUNNING
    stream = await backend.open_console("s")
    clock.advance(30)
    out = await read_until(stream, b"A start job is running")
    assert b"login:" not in out
    stop = asyncio.create_task(backend.perform("s", Action.STOP))
    await asyncio.sleep(0)
    clock.advance(29)
    await asyncio.sleep(0)
    assert not stop.done()  # the stuck guest ignores the power button
    clock.advance(1.2)  # shutdown_timeout (30 s), then a forced power-off
    assert (await asyncio.wait_for(stop, 1.0)).status is VMStatus.STOPPED
    await backend.close()
