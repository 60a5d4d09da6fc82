"""Transitions, events and console readers of simulated VMs, on a virtual clock."""

from __future__ import annotations

import functools

import pytest

from simulator.clock import VIRTUAL_EPOCH
from simulator.console import MAX_INPUT
from simulator.fleet import FleetSpec, Timings, VMSpec
from simulator.machine import Guest, Outcome
from simulator.taps import CHUNK, TAP_LIMIT
from tests.simulator.fleetrun import Run, drain
from vmws.backend import Action, VMInfo, VMStatus
from vmws.errors import VMNotFound, VMNotRunning


def test_list_is_sorted_and_initial_uptimes_follow_status() -> None:
    run = Run()
    infos = run.sim.list()
    assert [i.name for i in infos] == sorted(i.name for i in infos)
    by_name = {i.name: i for i in infos}
    assert by_name["run-a"].uptime >= 600.0
    assert by_name["paused-a"].uptime > 0.0
    for name in ("off-a", "saved-a", "broken-a"):
        assert by_name[name].uptime == 0.0
    assert all(i.last_state_change < run.clock.time() for i in infos)
    run.clock.advance(5)
    assert run.sim.info("run-a").uptime == pytest.approx(by_name["run-a"].uptime + 5)


def test_unknown_names() -> None:
    run = Run()
    with pytest.raises(VMNotFound):
        run.sim.info("nope")
    with pytest.raises(VMNotFound):
        run.sim.perform("nope", Action.START, done=lambda info: None)
    with pytest.raises(VMNotFound):
        run.tap("nope")


def test_start_is_done_at_power_on_and_the_boot_log_flows_on() -> None:
    run = Run()
    results: list[VMInfo] = []
    run.sim.perform("off-a", Action.START, done=results.append)
    # done at once, as libvirt's create() returns once QEMU runs: the guest boots on
    assert len(results) == 1 and results[0].status is VMStatus.RUNNING
    assert (results[0].last_state_change, results[0].uptime) == (VIRTUAL_EPOCH, 0.0)
    assert [(e.name, e.status) for e in run.events] == [("off-a", VMStatus.RUNNING)]
    machine = run.sim.machine("off-a")
    assert machine.guest is Guest.BOOTING and not machine.busy
    tap = run.tap("off-a")
    assert tap.read() == b""  # no login banner yet: getty is not up
    run.clock.advance(1.0)
    boot = drain(tap)
    assert b"Linux version 5.15.0-105-generic" in boot and b"login:" not in boot
    assert run.sim.sample("off-a").cpu_utilization >= 60.0  # booting is busy work
    run.clock.advance(1.0)  # the boot takes 1.5 s ± 20 %
    assert drain(tap).endswith(b"off-a login: ")
    assert machine.guest is Guest.UP
    assert run.sim.sample("off-a").cpu_utilization < 60.0


def test_graceful_stop_prints_shutdown_then_eof() -> None:
    run = Run()
    tap = run.tap("run-a")
    drain(tap)
    info = run.perform("run-a", Action.STOP)
    assert info.status is VMStatus.STOPPED and info.uptime == 0.0
    out = drain(tap)
    assert b"Reached target System Shutdown" in out and out.endswith(b"reboot: Power down\r\n")
    assert tap.eof
    assert run.events[-1].status is VMStatus.STOPPED


def test_forced_stop_prints_nothing() -> None:
    run = Run()
    tap = run.tap("run-a")
    drain(tap)
    run.perform("run-a", Action.STOP, force=True)
    assert drain(tap) == b"" and tap.eof


def test_restart_is_done_at_the_reset_and_the_tap_sees_the_new_boot() -> None:
    run = Run()
    tap = run.tap("run-a")
    tap.write(b"admin\nadmin\n")
    drain(tap)
    before = run.sim.info("run-a")
    began = run.clock.time()
    info = run.perform("run-a", Action.RESTART)
    assert info.status is VMStatus.RUNNING
    assert 0.32 <= run.clock.time() - began <= 0.49  # the guest's shutdown half: 0.4 s ± 20 %
    assert info.uptime == 0.0 < before.uptime  # reset just now
    assert info.last_state_change > before.last_state_change
    shutdown, restarting, boot = drain(tap).partition(b"reboot: Restarting system\r\n")
    assert b"Stopped target Multi-User System" in shutdown and restarting
    assert run.sim.machine("run-a").guest is Guest.BOOTING
    run.clock.advance(2.0)
    boot += drain(tap)
    assert boot.startswith(b"[    0.000000] Linux version") and boot.endswith(b"run-a login: ") and not tap.eof
    assert [e.status for e in run.events] == [VMStatus.RUNNING]


def test_forced_restart_skips_the_shutdown_lines() -> None:
    run = Run()
    tap = run.tap("run-a")
    drain(tap)
    began = run.clock.time()
    run.perform("run-a", Action.RESTART, force=True)
    assert run.clock.time() == began  # a reset: at once
    run.clock.advance(2.0)
    out = drain(tap)
    assert b"Restarting" not in out and out.startswith(b"[    0.000000] Linux version")
    assert out.endswith(b"run-a login: ")


def test_a_graceful_stop_while_booting_waits_for_the_login_prompt() -> None:
    # a guest still booting ignores the ACPI power button, as real guests do
    run = Run()
    run.perform("off-a", Action.START)
    tap = run.tap("off-a")
    began = run.clock.time()
    info = run.perform("off-a", Action.STOP)
    assert info.status is VMStatus.STOPPED and tap.eof
    took = run.clock.time() - began
    assert 1.2 + 0.8 <= took <= 1.8 + 1.2 + 0.02  # the boot (1.5 s ± 20 %), then the shutdown (1 s ± 20 %)
    out = drain(tap)
    login = out.index(b"off-a login: ")
    assert b"Linux version" in out[:login]
    assert out.index(b"Reached target System Shutdown") > login and out.endswith(b"reboot: Power down\r\n")
    ignored = "off-a            command  the guest ignores the shutdown request until it has booted"
    assert ignored in run.sim.events.text()


def test_a_graceful_restart_while_booting_waits_for_the_login_prompt() -> None:
    run = Run()
    run.perform("off-a", Action.START)
    tap = run.tap("off-a")
    run.perform("off-a", Action.RESTART)
    out = drain(tap)
    assert out.index(b"off-a login: ") < out.index(b"reboot: Restarting system")
    run.clock.advance(2.0)
    assert drain(tap).endswith(b"off-a login: ")


def test_a_forced_stop_while_booting_is_at_once() -> None:
    run = Run()
    run.perform("off-a", Action.START)
    began = run.clock.time()
    assert run.perform("off-a", Action.STOP, force=True).status is VMStatus.STOPPED
    assert run.clock.time() - began <= 0.13  # the power-off only (0.1 s ± 20 %)


def test_a_pause_or_a_suspend_during_the_boot_holds_it() -> None:
    run = Run(fleet=FleetSpec(vms=(VMSpec("slow", status=VMStatus.STOPPED, timings=Timings(boot=10.0)),)))
    run.perform("slow", Action.START)
    tap = run.tap("slow")
    run.clock.advance(2)
    run.perform("slow", Action.PAUSE)
    drain(tap)
    run.clock.advance(60)
    assert drain(tap) == b"" and run.sim.machine("slow").guest is Guest.BOOTING
    run.perform("slow", Action.RESUME)
    run.clock.advance(2)  # 4 s into a boot of at least 8 s
    assert b"login:" not in drain(tap)
    run.perform("slow", Action.SUSPEND)
    assert tap.eof
    run.clock.advance(60)
    run.perform("slow", Action.RESUME)
    again = run.tap("slow")
    assert again.read() == b""  # still booting: no banner to show
    run.clock.advance(1)
    assert b"login:" not in drain(again)
    run.clock.advance(10)
    assert drain(again).endswith(b"slow login: ") and run.sim.machine("slow").guest is Guest.UP


def test_suspend_ends_the_console_and_restore_keeps_the_session() -> None:
    run = Run()
    tap = run.tap("run-a")
    tap.write(b"admin\nadmin\n")
    uptime = run.sim.info("run-a").uptime
    run.perform("run-a", Action.SUSPEND)
    assert tap.eof
    with pytest.raises(VMNotRunning):
        run.tap("run-a")
    run.clock.advance(100)
    info = run.perform("run-a", Action.RESUME)
    assert info.status is VMStatus.RUNNING
    assert info.uptime == pytest.approx(uptime + 1.0, abs=0.5)  # suspended time does not count
    again = run.tap("run-a")
    again.write(b"whoami\n")
    assert drain(again) == b"whoami\r\nadmin\r\nadmin@run-a:~$ "


def test_pause_holds_input_and_timers_until_resume() -> None:
    run = Run()
    tap = run.tap("run-a")
    tap.write(b"admin\nwrong\n")  # the "Login incorrect" timer is pending
    drain(tap)
    run.perform("run-a", Action.PAUSE)
    tap.write(b"more")
    run.clock.advance(5)
    assert drain(tap) == b""
    assert not tap.eof
    run.perform("run-a", Action.RESUME)
    assert drain(tap) == b"\r\nLogin incorrect\r\nrun-a login: more"


def test_actions_asked_for_while_one_runs_wait_their_turn() -> None:
    run = Run()
    order: list[tuple[str, Outcome]] = []

    def record(what: str, outcome: Outcome) -> None:
        order.append((what, outcome))

    for action in (Action.RESTART, Action.PAUSE, Action.STOP):
        run.sim.perform("run-a", action, done=functools.partial(record, action.value))
    assert order == []
    run.clock.advance(10)
    assert [(a, getattr(o, "status", o)) for a, o in order] == [
        ("restart", VMStatus.RUNNING),
        ("pause", VMStatus.PAUSED),
        ("stop", VMStatus.STOPPED),
    ]
    assert [e.status for e in run.events] == [VMStatus.RUNNING, VMStatus.PAUSED, VMStatus.STOPPED]


def test_a_queued_action_is_judged_by_the_status_it_finds() -> None:
    run = Run()
    outcomes: list[object] = []
    run.sim.perform("run-a", Action.STOP, done=outcomes.append)
    run.sim.perform("run-a", Action.RESTART, done=outcomes.append)  # legal now, not once stopped
    run.clock.advance(10)
    assert isinstance(outcomes[0], VMInfo) and outcomes[0].status is VMStatus.STOPPED
    assert isinstance(outcomes[1], VMNotRunning)


@pytest.mark.parametrize(
    ("name", "action", "status"),
    [
        ("paused-a", Action.START, VMStatus.RUNNING),
        ("saved-a", Action.START, VMStatus.RUNNING),
        ("broken-a", Action.START, VMStatus.RUNNING),
        ("broken-a", Action.STOP, VMStatus.STOPPED),
        ("saved-a", Action.STOP, VMStatus.STOPPED),
        ("paused-a", Action.SUSPEND, VMStatus.SUSPENDED),
        ("paused-a", Action.PAUSE, VMStatus.PAUSED),
        ("off-a", Action.STOP, VMStatus.STOPPED),
    ],
)
def test_table_cells(name: str, action: Action, status: VMStatus) -> None:
    assert Run().perform(name, action).status is status


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("off-a", Action.RESTART),
        ("off-a", Action.PAUSE),
        ("saved-a", Action.PAUSE),
        ("broken-a", Action.RESUME),
        ("broken-a", Action.SUSPEND),
        ("paused-a", Action.RESTART),
    ],
)
def test_refused_cells(name: str, action: Action) -> None:
    run = Run()
    outcomes: list[object] = []
    run.sim.perform(name, action, done=outcomes.append)  # refused at once
    assert len(outcomes) == 1 and isinstance(outcomes[0], VMNotRunning)
    assert run.events == []


def test_noops_complete_at_once_without_events() -> None:
    run = Run()
    results: list[VMInfo] = []
    run.sim.perform("run-a", Action.START, done=results.append)
    run.sim.perform("off-a", Action.STOP, done=results.append)
    assert [r.status for r in results] == [VMStatus.RUNNING, VMStatus.STOPPED]
    assert run.events == []


def test_a_failing_listener_does_not_stop_the_others() -> None:
    run = Run()

    def broken(info: VMInfo) -> None:
        raise RuntimeError("boom")

    run.sim.subscribe(broken)
    later: list[VMInfo] = []
    unsubscribe = run.sim.subscribe(later.append)
    run.perform("run-a", Action.PAUSE)
    assert [e.status for e in later] == [VMStatus.PAUSED]
    unsubscribe()
    unsubscribe()  # twice is harmless
    run.perform("run-a", Action.RESUME)
    assert len(later) == 1


def test_console_refused_unless_running() -> None:
    run = Run()
    for name in ("off-a", "paused-a", "saved-a", "broken-a"):
        with pytest.raises(VMNotRunning, match=r"is (stopped|paused|suspended|error)"):
            run.tap(name)
    run.perform("paused-a", Action.RESUME)
    assert run.tap("paused-a").read() == b"\r\nUbuntu 22.04.4 LTS paused-a ttyS0\r\n\r\npaused-a login: "


def test_a_pause_refuses_new_readers_but_keeps_those_attached() -> None:
    run = Run()
    tap = run.tap("run-a")
    drain(tap)
    run.perform("run-a", Action.PAUSE)
    with pytest.raises(VMNotRunning, match="paused"):
        run.tap("run-a")
    assert not tap.eof
    tap.write(b"admin\n")
    run.perform("run-a", Action.RESUME)
    assert drain(tap) == b"admin\r\nPassword: "


def test_input_held_while_paused_is_bounded_like_a_tty() -> None:
    run = Run()
    tap = run.tap("run-a")
    tap.write(b"admin\nadmin\n")
    drain(tap)
    run.perform("run-a", Action.PAUSE)
    for _ in range(1000):  # 1 MiB typed at a frozen guest
        tap.write(b"x" * 1024)
    held = run.sim.machine("run-a")._held_input
    assert held is not None and len(held) == MAX_INPUT
    run.perform("run-a", Action.RESUME)
    echoed = drain(tap)
    assert echoed == b"x" * (MAX_INPUT - 1)  # the line keeps room for Enter
    tap.write(b"\x03")
    assert drain(tap) == b"^C\r\nadmin@run-a:~$ "  # the console still answers


def test_several_taps_each_see_everything() -> None:
    run = Run()
    first, second = run.tap("run-a"), run.tap("run-a")
    drain(first), drain(second)
    first.write(b"adm")
    second.write(b"in\n")
    assert drain(first) == drain(second) == b"admin\r\nPassword: "
    second.close()
    assert second.eof and second.read() == b""
    first.write(b"admin\n")
    assert drain(first).endswith(b"admin@run-a:~$ ")


def test_a_flood_waits_for_the_slowest_reader() -> None:
    run = Run()
    fast, slow = run.tap("run-a"), run.tap("run-a")
    fast.write(b"admin\nadmin\n")
    drain(fast), drain(slow)
    fast.write(b"yes\n")
    total = 0
    for _ in range(20):
        chunk = fast.read()
        assert len(chunk) <= CHUNK + 1024
        total += len(chunk)
    assert TAP_LIMIT <= total <= TAP_LIMIT + 2 * CHUNK  # then the slow reader's backlog holds it
    assert slow.buffered <= TAP_LIMIT + CHUNK
    assert fast.read() == b"" and not fast.eof
    slow.close()
    assert len(fast.read()) > 0


def test_halt_ends_consoles_and_cancels_transitions() -> None:
    run = Run()
    tap = run.tap("run-a")
    results: list[VMInfo] = []
    run.sim.perform("run-b", Action.RESTART, done=results.append)
    run.sim.halt()
    assert tap.eof
    run.clock.advance(10)
    assert results == []


def test_same_seed_same_transcript_other_seed_other_timings() -> None:
    def transcript(seed: int) -> tuple[bytes, list[tuple[str, str, float]]]:
        run = Run(seed=seed)
        tap = run.tap("run-a")
        out = bytearray(drain(tap))
        script = [b"admin\n", b"admin\n", b"uptime\n", b"seq 5\n", b"nope\n", b"exit\n"]
        for keys in script:
            tap.write(keys)
            run.clock.advance(0.3)
            out += drain(tap)
        run.perform("run-a", Action.RESTART)
        out += drain(tap)
        run.perform("off-a", Action.START)
        run.perform("run-a", Action.STOP)
        out += drain(tap)
        samples = [run.sim.sample(n) for n in run.sim.names()]
        events = [(e.name, e.status.value, e.last_state_change) for e in run.events]
        return bytes(out) + repr(samples).encode(), events

    first, again, other = transcript(3), transcript(3), transcript(4)
    assert first == again
    assert first != other
