"""Every fault, scripted in a scenario timeline and driven on a virtual clock."""

from __future__ import annotations

import pytest

from simulator.scenario import parse_scenario
from simulator.taps import ConsoleTap
from tests.simulator.fleetrun import Run, drain
from vmws.backend import Action, VMInfo, VMStatus
from vmws.errors import CommandFailed, VMNotRunning

FLEET = """
[[vm]]
name = "web-1"

[[vm]]
name = "web-2"

[[vm]]
name = "db-1"
status = "stopped"
timings = { boot = "20s", shutdown_timeout = "90s" }
"""


def scripted(events: str, seed: int = 0) -> Run:
    return Run(seed=seed, fleet=parse_scenario(FLEET + events))


def log(run: Run) -> str:
    return run.sim.events.text()


def armed(fault: str) -> tuple[Run, ConsoleTap]:
    """web-1 with ``fault`` armed, and a reader of its console with nothing unread."""
    run = scripted(f'[[event]]\nat = "0s"\nvm = "web-1"\nevent = "{fault}"\n')
    run.clock.advance(1)
    tap = run.tap("web-1")
    drain(tap)
    return run, tap


def statuses(run: Run, name: str) -> list[VMStatus]:
    return [e.status for e in run.events if e.name == name]


# crash


def test_crash_sets_error_ends_the_console_and_zeroes_metrics() -> None:
    run = scripted('[[event]]\nat = "90s"\nvm = "web-1"\nevent = "crash"\n')
    tap = run.tap("web-1")
    tap.write(b"admin\nadmin\n")
    drain(tap)
    run.clock.advance(89.9)
    assert run.sim.info("web-1").status is VMStatus.RUNNING and not tap.eof
    run.clock.advance(0.2)
    info = run.sim.info("web-1")
    assert (info.status, info.uptime) == (VMStatus.ERROR, 0.0)
    assert statuses(run, "web-1") == [VMStatus.ERROR]
    assert b"Kernel panic - not syncing" in drain(tap) and tap.eof
    with pytest.raises(VMNotRunning):
        run.tap("web-1")
    sample = run.sim.sample("web-1")
    assert (sample.cpu_utilization, sample.memory_used, sample.net_rx_bytes) == (0.0, 0, 0)
    assert "web-1            timeline crash [event #1 (line 12)]" in log(run)
    assert "web-1            status   running -> error" in log(run)
    assert run.sim.info("web-2").status is VMStatus.RUNNING  # only its target
    # `start` recovers a crashed VM
    assert run.perform("web-1", Action.START, within=5).status is VMStatus.RUNNING


def test_a_crash_fails_the_action_under_way() -> None:
    run = scripted('[[event]]\nat = "5s"\nvm = "db-1"\nevent = "crash"\n')
    run.perform("db-1", Action.START)
    # a graceful stop waits for the 20 s boot to finish; the crash at 5 s cuts it short
    outcome = run.outcome("db-1", Action.STOP, within=30)
    assert isinstance(outcome, CommandFailed) and "crashed during stop" in outcome.message
    assert run.sim.info("db-1").status is VMStatus.ERROR


def test_a_crash_of_a_vm_that_is_not_running_is_ignored() -> None:
    run = scripted('[[event]]\nat = "1s"\nvm = "db-1"\nevent = "crash"\n')
    run.clock.advance(2)
    assert run.sim.info("db-1").status is VMStatus.STOPPED
    assert "db-1             fault    crash ignored: the VM is stopped" in log(run)


# hang-on-shutdown


def test_a_hung_shutdown_waits_until_forced() -> None:
    run, tap = armed("hang-on-shutdown")
    graceful: list[object] = []
    run.sim.perform("web-1", Action.STOP, done=graceful.append)
    run.clock.advance(20)
    assert graceful == [] and run.sim.info("web-1").status is VMStatus.RUNNING
    assert b"A stop job is running for User Manager for UID 1000 (1" in drain(tap)
    forced = run.perform("web-1", Action.STOP, force=True, within=1)  # cuts in at once
    assert forced.status is VMStatus.STOPPED
    assert len(graceful) == 1 and isinstance(graceful[0], VMInfo) and graceful[0].status is VMStatus.STOPPED
    assert tap.eof
    assert "forced stop interrupts shutting down" in log(run)
    # the fault fired once: the next stop is an ordinary one
    run.perform("web-1", Action.START)
    assert run.perform("web-1", Action.STOP, within=3).status is VMStatus.STOPPED


def test_a_hung_shutdown_is_forced_after_the_shutdown_timeout() -> None:
    run = scripted('[[event]]\nat = "0s"\nvm = "db-1"\nevent = "hang-on-shutdown"\n')
    run.perform("db-1", Action.START, within=30)
    began = run.clock.time()
    info = run.perform("db-1", Action.STOP, within=120)
    assert info.status is VMStatus.STOPPED
    assert 90.0 <= run.clock.time() - began <= 91.0  # shutdown_timeout = 90 s, then a quick power-off
    assert "db-1             fault    graceful stop forced after 1min 30s" in log(run)


# fail-next-command


def test_the_next_command_fails_with_the_scripted_message() -> None:
    run = scripted(
        '[[event]]\nat = "1s"\nvm = "web-1"\nevent = "fail-next-command"\n'
        'message = "internal error: qemu unexpectedly closed the monitor"\n'
    )
    run.clock.advance(2)
    outcome = run.outcome("web-1", Action.RESTART)
    assert isinstance(outcome, CommandFailed)
    assert outcome.message == "internal error: qemu unexpectedly closed the monitor"
    assert run.sim.info("web-1").status is VMStatus.RUNNING and run.events == []
    assert run.perform("web-1", Action.PAUSE).status is VMStatus.PAUSED  # only the next one


def test_fail_next_command_can_wait_for_one_action_and_fail_several() -> None:
    run = scripted('[[event]]\nat = "0s"\nvm = "web-1"\nevent = "fail-next-command"\naction = "stop"\ntimes = 2\n')
    run.clock.advance(1)
    assert run.perform("web-1", Action.PAUSE).status is VMStatus.PAUSED
    for _ in range(2):
        outcome = run.outcome("web-1", Action.STOP)
        assert isinstance(outcome, CommandFailed) and "simulated fault" in outcome.message
    assert run.perform("web-1", Action.STOP).status is VMStatus.STOPPED


# stuck-booting


def test_a_stuck_boot_never_reaches_login_and_a_graceful_stop_is_forced() -> None:
    run, tap = armed("stuck-booting")
    # the restart is done at the reset, as ever: the boot that sticks comes after it
    info = run.perform("web-1", Action.RESTART)
    assert info.status is VMStatus.RUNNING and info.uptime == 0.0
    run.clock.advance(119)
    out = drain(tap)
    assert b"A start job is running for /dev/disk/by-label/data" in out and b"login:" not in out
    assert run.sim.info("web-1").status is VMStatus.RUNNING and run.sim.machine("web-1").stuck
    assert not run.sim.machine("web-1").busy
    tap.write(b"admin\n")  # nobody reads the keyboard yet
    run.clock.advance(25)
    later = drain(tap)
    assert b"admin" not in later and b"(2min 20s / no limit)" in later  # the start job goes on
    # the power button is not handled yet: a graceful stop is forced after shutdown_timeout (30 s)
    began = run.clock.time()
    assert run.perform("web-1", Action.STOP, within=40).status is VMStatus.STOPPED
    assert 30.0 <= run.clock.time() - began <= 30.2
    assert tap.eof
    assert "web-1            fault    graceful stop forced after 30s" in log(run)
    # the next boot is a normal one
    run.perform("web-1", Action.START)
    fresh = run.tap("web-1")
    run.clock.advance(2)
    assert drain(fresh).endswith(b"web-1 login: ")


def test_a_graceful_restart_of_a_stuck_guest_resets_it_after_the_restart_timeout() -> None:
    run, tap = armed("stuck-booting")
    run.perform("web-1", Action.RESTART)
    run.clock.advance(5)
    assert run.sim.machine("web-1").stuck
    began = run.clock.time()
    info = run.perform("web-1", Action.RESTART, within=70)
    assert 60.0 <= run.clock.time() - began <= 60.02  # restart_timeout, then a reset
    assert info.status is VMStatus.RUNNING and info.uptime == 0.0
    assert "the guest did not reboot within 60 s: reset" in log(run)
    run.clock.advance(2)
    assert drain(tap).endswith(b"web-1 login: ") and not run.sim.machine("web-1").stuck


# pause


def test_a_scripted_pause_freezes_the_guest_and_resumes_after_its_duration() -> None:
    run = scripted('[[event]]\nat = "10s"\nvm = "web-1"\nevent = "pause"\nduration = "1m"\n')
    run.clock.advance(10.5)
    assert run.sim.info("web-1").status is VMStatus.PAUSED
    frozen = run.sim.sample("web-1")
    run.clock.advance(30)
    assert run.sim.sample("web-1").net_rx_bytes == frozen.net_rx_bytes
    assert run.sim.sample("web-1").cpu_utilization == 0.0
    run.clock.advance(30)
    assert run.sim.info("web-1").status is VMStatus.RUNNING
    assert statuses(run, "web-1") == [VMStatus.PAUSED, VMStatus.RUNNING]


def test_a_pause_without_duration_waits_for_resume_and_is_ignored_while_busy() -> None:
    run = scripted(
        '[[event]]\nat = "1s"\nvm = "web-1"\nevent = "pause"\n[[event]]\nat = "1s"\nvm = "db-1"\nevent = "pause"\n'
    )
    run.perform("db-1", Action.START)
    stopping: list[object] = []
    run.sim.perform("db-1", Action.STOP, done=stopping.append)  # waits for the 20 s boot: busy
    run.clock.advance(600)
    assert run.sim.info("web-1").status is VMStatus.PAUSED
    assert run.sim.info("db-1").status is VMStatus.STOPPED and len(stopping) == 1
    assert "db-1             fault    pause ignored: the VM is busy" in log(run)
    assert run.perform("web-1", Action.RESUME).status is VMStatus.RUNNING


# bursts


@pytest.mark.parametrize(("kind", "counter"), [("disk-burst", "disk_write_bytes"), ("network-burst", "net_rx_bytes")])
def test_a_burst_adds_rate_times_duration_and_cpu_while_it_lasts(kind: str, counter: str) -> None:
    burst = f'[[event]]\nat = "60s"\nvm = "web-1"\nevent = "{kind}"\nduration = "45s"\nrate = "80MiB/s"\n'
    quiet, busy = scripted("", seed=4), scripted(burst, seed=4)

    def both(seconds: float) -> tuple[int, int, float, float]:
        quiet.clock.advance(seconds)
        busy.clock.advance(seconds)
        a, b = quiet.sim.sample("web-1"), busy.sim.sample("web-1")
        return getattr(a, counter), getattr(b, counter), a.cpu_utilization, b.cpu_utilization

    before, with_burst, _, _ = both(59)
    assert before == with_burst
    a, b, cpu_a, cpu_b = both(20)  # 19 s into the burst
    assert b - a == int(80 * 2**20 * 19)
    assert cpu_b >= cpu_a + 9.9
    a, b, cpu_a, cpu_b = both(60)  # over
    assert b - a == int(80 * 2**20 * 45)
    assert cpu_a == cpu_b


def test_burst_bytes_carry_on_across_a_reboot() -> None:
    run = scripted('[[event]]\nat = "1s"\nvm = "web-1"\nevent = "disk-burst"\nduration = "10s"\n')
    run.clock.advance(20)
    before = run.sim.sample("web-1").disk_write_bytes
    assert before > 50 * 2**20 * 10
    run.perform("web-1", Action.RESTART, force=True)
    assert run.sim.sample("web-1").disk_write_bytes == before  # a reset: nothing new written yet
    run.clock.advance(20)
    assert run.sim.sample("web-1").disk_write_bytes > before


def test_bursts_and_faults_on_a_stopped_vm_are_ignored() -> None:
    run = scripted('[[event]]\nat = "1s"\nvm = "db-1"\nevent = "network-burst"\n')
    run.clock.advance(2)
    assert "db-1             fault    network-burst ignored: the VM is stopped" in log(run)
