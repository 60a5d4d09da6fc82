"""One simulated VM: its status, its transitions in clock time, its faults (its console
readers are in ``simulator.taps``).

Transitions follow the action table, ``vmws.backend.ACTIONS``, step by step and take
clock time (jittered by the seeded generator). Actions on one machine run one at a time: one asked for
while another is under way waits in a queue, as libvirt's per-domain job lock makes
it wait — except a forced ``stop``, which, like ``virsh destroy``, cuts in at once.
Every outcome reaches the ``done`` callback: the resulting ``VMInfo``, or a
``BackendError`` (``VMNotRunning`` where the table says so, ``CommandFailed`` for a
scripted failure or a crash).

An action is done once it has taken effect at the hypervisor, as with libvirt: the
guest itself (``Guest``) goes on in its own time. ``start`` powers on and is done at
once — the VM is ``running`` while the boot log flows on to getty's login prompt (or,
when scripted, to a start job that never ends). A graceful ``restart`` is done when
the guest, having printed its shutdown lines, is reset; a forced one resets at once.
A guest that has not finished booting ignores the ACPI power button, as real ones
do: a graceful stop or restart then waits for the login prompt, and is forced — a
power-off after ``shutdown_timeout``, a reset after ``restart_timeout`` — if it never
comes. A graceful stop prints systemd's shutdown lines and powers off (or hangs, when
scripted, until forced: by a forced stop, or by the ``shutdown_timeout``). Suspending
saves the guest (its console survives a restore); pausing freezes it (typed input,
console timers and a boot under way wait for the resume). Network and disk counters
count from power-on: a reboot carries them on, a power-off or a crash zeroes them.

Scheduled callbacks carry the machine's epoch: powering off, rebooting or crashing
bumps it, so whatever was pending from before does nothing — no list of timer
handles per VM. The console, the faults and the input held while paused exist only
once needed: an idle VM of a 10,000-VM fleet is a few hundred bytes.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from simulator.bootlog import (
    boot_log,
    kernel_lines,
    panic_lines,
    shutdown_log,
    start_job_line,
    stop_job_line,
    systemd_time,
)
from simulator.clock import Clock
from simulator.console import MAX_INPUT, Console
from simulator.eventlog import Category
from simulator.faults import DEFAULT_RATES, Burst, BurstKind, Faults
from simulator.fleet import Personality, VMSpec
from simulator.metrics import (
    Activity,
    Extra,
    MetricsModel,
    counters_of,
    noise,
    sample_metrics,
)
from simulator.screen.display import Display
from simulator.screen.link import Reactor
from simulator.taps import ConsoleReaders, ConsoleTap
from vmws.backend import Action, MetricsSample, Step, VMInfo, VMStatus, step_of
from vmws.errors import BackendError, CommandFailed, VMNotRunning

__all__ = ["Phase", "Guest", "Machine", "Done", "Outcome", "Record"]

_STUCK_LINE_EVERY = 10.0  # clock seconds between "A start job is running" lines
_STOP_LINE_EVERY = 5.0

Outcome = VMInfo | BackendError
Done = Callable[[Outcome], None]
Record = Callable[[str, Category, str], None]


class Phase(enum.Enum):
    """What the machine is busy with; IDLE when no transition is under way."""

    IDLE = "idle"
    SHUTTING_DOWN = "shutting down"
    REBOOTING = "rebooting"
    DESTROYING = "powering off"
    SAVING = "saving"
    RESTORING = "restoring"
    PAUSING = "pausing"
    RESUMING = "resuming"


class Guest(enum.Enum):
    """How far the guest OS has come since power-on, whatever the hypervisor is doing."""

    DOWN = "down"  # no guest: stopped or crashed
    BOOTING = "booting"  # kernel and init; the power button is not handled yet
    STUCK = "stuck"  # a boot waiting forever for a start job; the power button neither
    UP = "up"  # getty's login prompt or further: the power button shuts it down


@dataclass(slots=True)
class _Job:
    action: Action
    force: bool
    dones: list[Done]


class Machine:
    __slots__ = (
        "spec", "name", "hostname", "status", "last_state_change", "phase", "model", "_clock", "_rng", "_salt",
        "_notify", "_record", "_console", "_readers", "_deferred", "_held_input", "_boot_started", "_boot_duration",
        "_booted_at", "_saved_uptime", "_run_acc", "_run_since", "_epoch", "_current", "_queue", "_faults",
        "_disk_written", "_boots", "_guest", "_when_up", "_carried", "_display", "_tty1", "_boot_shown",
    )  # fmt: skip

    def __init__(
        self,
        spec: VMSpec,
        clock: Clock,
        rng: random.Random,
        salt: int,
        notify: Callable[[VMInfo], None],
        record: Record | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.hostname = spec.personality.hostname_for(spec.name)
        self._clock = clock
        self._rng = rng
        self._salt = salt
        self._notify = notify
        self._record = record
        self.model = MetricsModel(salt, spec.name, spec.profile, spec.vcpus, spec.memory_mib * 1024 * 1024)
        self.phase = Phase.IDLE
        self._console: Console | None = None
        self._readers: ConsoleReaders | None = None  # made when the first reader attaches
        self._deferred: list[Callable[[], None]] | None = None  # console timers due while frozen
        self._held_input: bytearray | None = None  # typed while paused
        self._boot_started = 0.0
        self._boot_duration = 1.0
        self._epoch = 0
        self._current: _Job | None = None
        self._queue: deque[_Job] | None = None
        self._faults: Faults | None = None
        self._disk_written = 0
        self._boots = 0
        self._guest = Guest.DOWN
        self._when_up: Callable[[], None] | None = None  # an ACPI request waiting for the boot to end
        self._carried: Extra | None = None  # counters of earlier boots since power-on
        self._display: Display | None = None  # the screen, made when first opened
        self._tty1: Console | None = None  # tty1's getty and shell, while the screen exists
        self._boot_shown = 0  # boot log lines printed so far in this boot

        now = clock.time()
        self.status = spec.status
        # guests that start out up pretend to have been up for a while
        age = rng.uniform(600.0, 3 * 86_400.0)
        self.last_state_change = now - (age if spec.status is VMStatus.RUNNING else rng.uniform(60.0, age))
        self._booted_at: float | None = None
        self._saved_uptime = 0.0
        self._run_acc = 0.0  # running seconds since boot, up to _run_since
        self._run_since: float | None = None
        if spec.status in (VMStatus.RUNNING, VMStatus.PAUSED, VMStatus.SUSPENDED):
            self._guest = Guest.UP
            self._run_acc = max(0.0, self.last_state_change - (now - age))
            if spec.status is VMStatus.RUNNING:
                self._booted_at, self._run_since, self._run_acc = now - age, now - age, 0.0
            elif spec.status is VMStatus.PAUSED:
                self._booted_at = now - age
            else:
                self._saved_uptime = self._run_acc

    @property
    def console(self) -> Console:
        """The serial console, made when first needed: at getty's prompt if the guest is up."""
        if self._console is None:
            up = self.status in (VMStatus.RUNNING, VMStatus.PAUSED, VMStatus.SUSPENDED)
            self._console = Console(
                self.hostname,
                self.spec.personality,
                self,
                self.spec.timings.login_failure_delay,
                memory_mib=self.spec.memory_mib,
                vcpus=self.spec.vcpus,
                at_login=up and self.phase is Phase.IDLE and self._guest is Guest.UP,
            )
        return self._console

    @property
    def faults(self) -> Faults:
        if self._faults is None:
            self._faults = Faults()
        return self._faults

    # Queries

    def info(self) -> VMInfo:
        return VMInfo(self.name, self.status, self.last_state_change, self.uptime())

    def uptime(self) -> float:
        if self._booted_at is None or self.status not in (VMStatus.RUNNING, VMStatus.PAUSED):
            return 0.0
        return max(0.0, self._clock.time() - self._booted_at)

    def running_seconds(self) -> float:
        now = self._clock.time()
        return self._run_acc + (now - self._run_since if self._run_since is not None else 0.0)

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def guest(self) -> Guest:
        return self._guest

    @property
    def stuck(self) -> bool:
        return self._guest is Guest.STUCK

    def sample(self) -> MetricsSample:
        now = self._clock.time()
        status = self.status
        console = self._console
        progress = 1.0
        if status is VMStatus.RUNNING:
            if self._guest is Guest.BOOTING:
                activity = Activity.BOOTING
                progress = (now - self._boot_started) / self._boot_duration
            elif console is not None and console.flooding:
                activity = Activity.FLOOD
            else:
                activity = Activity.IDLE
        elif status is VMStatus.PAUSED:
            activity = Activity.PAUSED
        else:
            activity = Activity.OFF
        since = self._run_since
        running = self._run_acc + (now - since if since is not None else 0.0)
        extra = None
        if self._faults is not None or self._disk_written or activity is Activity.FLOOD:
            written = self._disk_written + (console.busy_writes() if console is not None else 0)
            extra = (self._faults or Faults()).extra(running, written)
        carried = self._carried
        if carried is not None:
            extra = carried if extra is None else carried + extra
        return sample_metrics(self.model, self._salt, now, running, activity, progress, extra)

    def kernel_log(self) -> list[str]:
        """The kernel's messages of the current boot (for ``dmesg``)."""
        spec = self.spec
        return kernel_lines(spec.personality, memory_mib=spec.memory_mib, vcpus=spec.vcpus, seed=self._boot_seed())

    # Actions (each step as vmws.backend.ACTIONS says)

    def perform(self, action: Action, force: bool, done: Done) -> None:
        """Carry out ``action`` now, or after the actions already asked for; ``done``
        gets the outcome when it has finished (at once for a no-op or a refusal)."""
        job = _Job(action, force, [done])
        current = self._current
        if current is None:
            self._begin(job)
        elif action is Action.STOP and force and self.phase is Phase.DESTROYING:
            current.dones.append(done)  # it joins the power-off under way
        elif action is Action.STOP and force:
            self._preempt(job)
        else:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(job)

    def _begin(self, job: _Job) -> None:
        action = job.action
        if self._faults is not None:
            message = self._faults.take_failure(action)
            if message is not None:
                self._log(Category.FAULT, f"fail-next-command: {action.value} fails")
                self._deliver(job, CommandFailed(message))
                return
        try:
            step = step_of(action, self.status, self.name)
        except VMNotRunning as refused:
            self._deliver(job, refused)
            return
        if step is Step.NOOP:
            self._deliver(job, self.info())
            return
        self._current = job
        if step is Step.SHUTDOWN and not job.force:
            self._shutdown()
        elif step in (Step.SHUTDOWN, Step.POWER_OFF):
            self._destroy()
        elif step is Step.REBOOT:
            self._reboot(job.force)
        elif step is Step.BOOT:
            self._power_on()
        elif step is Step.SAVE:
            self._save()
        elif step is Step.RESTORE:
            self._restore()
        elif step is Step.PAUSE:
            self._pause()
        else:
            assert step is Step.UNPAUSE, step
            self._unpause()

    def _deliver(self, job: _Job, outcome: Outcome) -> None:
        for done in job.dones:
            done(outcome)
        self._next()

    def _next(self) -> None:
        if self._current is None and self._queue:
            self._begin(self._queue.popleft())

    def _finish(self, outcome: Outcome | None = None) -> None:
        """The transition under way is over: its callers hear, the next action begins."""
        job, self._current = self._current, None
        self.phase = Phase.IDLE
        if job is not None:
            self._deliver(job, outcome if outcome is not None else self.info())

    def _preempt(self, job: _Job) -> None:
        """A forced stop while something else is under way: pull the plug now."""
        old = self._current
        assert old is not None
        self._log(Category.COMMAND, f"forced stop interrupts {self.phase.value}")
        self._cancel_timers()
        if old.action is Action.STOP:
            job.dones[:0] = old.dones  # the graceful stop gets what it asked for
        else:
            failure = CommandFailed(f"{old.action.value} of {self.name!r} was interrupted by a forced stop")
            for done in old.dones:
                done(failure)
        self._current = job
        self._destroy()

    # Transitions

    def _jitter(self, nominal: float) -> float:
        return nominal * self._rng.uniform(0.8, 1.2)

    def _at(self, delay: float, callback: Callable[[], None]) -> None:
        epoch = self._epoch

        def fire() -> None:
            if self._epoch == epoch:
                callback()

        self._clock.call_later(delay, fire)

    def _cancel_timers(self) -> None:
        self._epoch += 1
        self._when_up = None

    def _set_status(self, status: VMStatus) -> None:
        old = self.status
        self.status = status
        self.last_state_change = self._clock.time()
        self._log(
            Category.STATUS, f"{old.value} -> {status.value}" if old is not status else f"{status.value} (new boot)"
        )
        self._notify(self.info())

    def _print_lines(self, lines: list[tuple[float, bytes]], offset: float = 0.0) -> None:
        for delay, line in lines:
            self._at(offset + delay, functools.partial(self._print, line))

    def _print(self, data: bytes) -> None:
        """Kernel and init lines: on the serial console and on tty1 (``console=tty1 console=ttyS0``)."""
        self.emit(data)
        if self._display is not None:
            self._display.feed(data)

    def _boot_seed(self) -> int:
        return int(noise(self._salt, self.model.key, 1_000_000 + self._boots) * 2**32)

    def _boot(self) -> None:
        """The guest boots: kernel and init lines over ``boot`` seconds, then getty's
        login prompt — or, when scripted, a start job that never ends. Each step is a
        console timer, so a pause or a suspend holds the boot where it is."""
        duration = self._jitter(self.spec.timings.boot)
        self._guest = Guest.BOOTING
        self._boot_started = self._clock.time()
        self._boot_duration = duration
        self._boot_shown = 0
        stuck = self._faults is not None and self._faults.stuck_boot
        if stuck:
            self.faults.stuck_boot = False
        lines = deque(self._boot_lines(stuck))

        def step(at: float) -> None:  # ``at``: seconds into the boot
            while lines and lines[0][0] <= at:
                self._print(lines.popleft()[1])
                self._boot_shown += 1
            if lines:
                self.later(lines[0][0] - at, functools.partial(step, lines[0][0]))
            else:
                self.later(max(0.0, duration - at), self._stick if stuck else self._booted)

        self.later(0.0, functools.partial(step, 0.0))

    def _boot_lines(self, stuck: bool) -> list[tuple[float, bytes]]:
        """The boot log of the current boot (a pure function of the boot's seed)."""
        return boot_log(
            self.spec.personality,
            memory_mib=self.spec.memory_mib,
            vcpus=self.spec.vcpus,
            duration=self._boot_duration,
            seed=self._boot_seed(),
            stuck=stuck,
        )

    def _booted(self) -> None:
        """getty prints its prompt: the guest is up, and answers a power button pressed meanwhile."""
        self.console.show_login()
        if self._display is not None:
            self._tty1 = self._new_tty1(at_login=False)
            self._tty1.show_login()
        self._guest = Guest.UP
        waiting, self._when_up = self._when_up, None
        if waiting is not None:
            waiting()

    def _stick(self) -> None:
        """A boot that waits forever for a disk: a start-job line every few seconds."""
        self._guest = Guest.STUCK
        began = self._clock.time()
        self._log(Category.FAULT, "boot is stuck (a start job waits for a disk)")

        def line() -> None:
            if self._guest is not Guest.STUCK:
                return
            if self.status is VMStatus.RUNNING:
                self._print(start_job_line(self.spec.personality, self._clock.time() - began))
            self._at(_STUCK_LINE_EVERY, line)

        line()

    def _drop_console(self) -> None:
        """The shell is gone (a reboot or shutdown began): nothing reads the keyboard now.
        What a ``yes > FILE`` running in it wrote stays counted."""
        if self._console is not None:
            self._disk_written += self._console.busy_writes()
            self._console = None
        if self._tty1 is not None:
            self._disk_written += self._tty1.busy_writes()
            self._tty1 = None

    def _mark_booted(self) -> None:
        now = self._clock.time()
        self._booted_at = now
        self._run_acc = 0.0
        self._run_since = now
        self._disk_written = 0
        if self._faults is not None:
            self._faults.bursts.clear()

    def _power_on(self) -> None:
        """QEMU starts: ``running`` at once and the start is done; the guest boots on."""
        self._cancel_timers()
        self._console = None  # a fresh boot: nothing typed before survives
        self._carried = None
        self._boots += 1
        self._mark_booted()
        self._set_status(VMStatus.RUNNING)
        self._boot()
        self._finish()

    def _until_up(self, what: str, timeout: float, then: Callable[[], None], forced: Callable[[], None]) -> bool:
        """A graceful request to a guest still booting: it ignores the power button, so
        ``then`` waits for the login prompt; ``forced`` follows after ``timeout`` if the
        prompt never comes. False when the guest is up and can be asked now."""
        if self._guest is Guest.UP:
            return False
        self._log(Category.COMMAND, f"the guest ignores the {what} request until it has booted")
        self._when_up = then
        self._at(timeout, forced)
        return True

    def _reboot(self, force: bool) -> None:
        self.phase = Phase.REBOOTING
        if force:
            self._reset()
        elif not self._until_up("reboot", self.spec.timings.restart_timeout, self._guest_reboot, self._reset_late):
            self._guest_reboot()

    def _guest_reboot(self) -> None:
        """The guest reboots itself: its shutdown lines, then the reset."""
        self._cancel_timers()
        self._drop_console()
        delay = self._jitter(self.spec.timings.reboot_shutdown)
        self._print_lines(shutdown_log(uptime=self.uptime(), duration=delay, reboot=True))
        self._at(delay, self._reset)

    def _reset_late(self) -> None:
        self._log(Category.FAULT, f"the guest did not reboot within {self.spec.timings.restart_timeout:g} s: reset")
        self._reset()

    def _reset(self) -> None:
        """The hypervisor resets the guest: a new boot begins and the restart is done.
        The QEMU process stays, so its network and disk counters carry on."""
        self._cancel_timers()
        self._drop_console()
        self._carried = counters_of(self.sample())
        self._boots += 1
        self._mark_booted()
        if self._display is not None:
            self._display.clear()  # the firmware clears the screen at reset
        # same status, but a new boot: watchers see uptime start again
        self._set_status(VMStatus.RUNNING)
        self._boot()
        self._finish()

    def _shutdown(self) -> None:
        """A graceful stop: the ACPI power button, forced off after ``shutdown_timeout``."""
        self.phase = Phase.SHUTTING_DOWN
        timeout = self.spec.timings.shutdown_timeout
        deadline = self._clock.time() + timeout
        if not self._until_up("shutdown", timeout, functools.partial(self._guest_shutdown, deadline), self._forced_off):
            self._guest_shutdown(deadline)

    def _guest_shutdown(self, deadline: float) -> None:
        """The guest shuts itself down: systemd's lines, then power-off (or a hang until ``deadline``)."""
        self._cancel_timers()
        self._drop_console()
        timings = self.spec.timings
        hang = self._faults is not None and self._faults.hang_shutdown
        if not hang:
            duration = self._jitter(timings.shutdown)
            self._print_lines(shutdown_log(uptime=self.uptime(), duration=duration, reboot=False))
            self._at(duration, self._powered_off)
            # a guest that came up just before the deadline may not finish in time
            self._at(max(0.0, deadline - self._clock.time()), self._forced_off)
            return
        self.faults.hang_shutdown = False
        self._log(Category.FAULT, "graceful shutdown hangs (a stop job ignores SIGTERM)")
        first = self._jitter(timings.shutdown) / 2
        self._print_lines(shutdown_log(uptime=self.uptime(), duration=first, reboot=False, hang=True))
        began = self._clock.time()

        def line() -> None:
            self._print(stop_job_line(self._clock.time() - began, timings.shutdown_timeout))
            self._at(_STOP_LINE_EVERY, line)

        self._at(first + 1.0, line)
        self._at(max(0.0, deadline - self._clock.time()), self._forced_off)

    def _forced_off(self) -> None:
        self._log(Category.FAULT, f"graceful stop forced after {systemd_time(self.spec.timings.shutdown_timeout)}")
        self._cancel_timers()
        self._destroy()

    def _destroy(self) -> None:
        self.phase = Phase.DESTROYING
        self._at(self._jitter(self.spec.timings.destroy), self._powered_off)

    def _power_down(self) -> None:
        """The guest is gone: nothing runs, nothing is typed, every reader reaches eof."""
        self._cancel_timers()
        self._console = None
        self._tty1 = None
        self._booted_at = None
        self._run_acc, self._run_since = 0.0, None
        self._deferred = None
        self._held_input = None
        self._guest = Guest.DOWN
        self._carried = None
        self._disk_written = 0
        if self._faults is not None:
            self._faults.bursts.clear()
        self._end_taps()

    def _powered_off(self) -> None:
        self._power_down()
        self._set_status(VMStatus.STOPPED)
        self._finish()

    def _settle(self, phase: Phase, nominal: float, status: VMStatus, effect: Callable[[], None]) -> None:
        """A transition that is one step: after its duration, ``effect`` then ``status``."""
        self.phase = phase

        def land() -> None:
            effect()
            self._set_status(status)
            if status is VMStatus.RUNNING:
                self._thaw()
            self._finish()

        self._at(self._jitter(nominal), land)

    def _freeze_run(self) -> None:
        self._run_acc = self.running_seconds()
        self._run_since = None

    def _save(self) -> None:
        def saved() -> None:
            self._saved_uptime = self.uptime()
            self._freeze_run()
            self._end_taps()  # QEMU exits after a managed save; its console goes with it

        self._settle(Phase.SAVING, self.spec.timings.save, VMStatus.SUSPENDED, saved)

    def _restore(self) -> None:
        def restored() -> None:
            now = self._clock.time()
            self._booted_at = now - self._saved_uptime
            self._run_since = now

        self._settle(Phase.RESTORING, self.spec.timings.restore, VMStatus.RUNNING, restored)

    def _pause(self) -> None:
        self._settle(Phase.PAUSING, self.spec.timings.pause, VMStatus.PAUSED, self._freeze_run)

    def _unpause(self) -> None:
        def resumed() -> None:
            self._run_since = self._clock.time()

        self._settle(Phase.RESUMING, self.spec.timings.pause, VMStatus.RUNNING, resumed)

    def _thaw(self) -> None:
        """Back to running: run what waited while the guest was frozen."""
        deferred, self._deferred = self._deferred or [], None
        for callback in deferred:
            callback()
        if self._held_input:
            held = bytes(self._held_input)
            self._held_input = None
            self.console.feed(held)
        self.wake_taps()  # a flood interrupted by the pause may go on
        if self._display is not None:
            self._display.wake()  # viewers waiting while frozen get what changed

    def halt(self) -> None:
        """The simulation is over: nothing scheduled will run, the consoles end."""
        self._cancel_timers()
        self._current = None
        self._queue = None
        self._console = None
        self._end_taps()

    # Faults (scripted by the timeline)

    def crash(self) -> bool:
        """The guest dies: status ``error``, consoles at eof, a pending action fails."""
        if self.status not in (VMStatus.RUNNING, VMStatus.PAUSED):
            return False
        if self.status is VMStatus.RUNNING:
            self._print(panic_lines(self.uptime()))
        job, self._current = self._current, None
        self.phase = Phase.IDLE
        self._power_down()
        self._set_status(VMStatus.ERROR)
        if job is not None:
            failure = CommandFailed(f"VM {self.name!r} crashed during {job.action.value}")
            for done in job.dones:
                done(failure)
        self._next()
        return True

    def fault_pause(self, duration: float | None) -> bool:
        """Paused by other means (an I/O error, the host): at once, resumed after ``duration``."""
        if self.status is not VMStatus.RUNNING or self._current is not None:
            return False
        self._freeze_run()
        self._set_status(VMStatus.PAUSED)
        if duration is not None:
            paused_at = self.last_state_change

            def resume() -> None:
                if self.status is VMStatus.PAUSED and self._current is None and self.last_state_change == paused_at:
                    self._run_since = self._clock.time()
                    self._set_status(VMStatus.RUNNING)
                    self._thaw()

            self._at(duration, resume)
        return True

    def burst(self, kind: BurstKind, duration: float | None, rate: float | None) -> bool:
        if self.status is not VMStatus.RUNNING:
            return False
        self.faults.bursts.append(
            Burst(
                kind,
                self.running_seconds(),
                duration if duration is not None else 60.0,
                rate if rate is not None else DEFAULT_RATES[kind],
            )
        )
        return True

    def _log(self, category: Category, text: str) -> None:
        if self._record is not None:
            self._record(self.name, category, text)

    # Console plumbing (ConsoleHost for the Console, ConsoleSource for the readers)

    def open_console(self, on_ready: Callable[[], None]) -> ConsoleTap:
        """A new reader; ``VMNotRunning`` unless the VM runs. Readers attached before a
        pause stay (the console is frozen, not gone), but a paused VM takes no new one
        (docs/protocol.md: 4009)."""
        if self.status is not VMStatus.RUNNING:
            raise VMNotRunning(f"VM {self.name!r} is {self.status.value}: its console is not available")
        if self._readers is None:
            self._readers = ConsoleReaders(self)
        return self._readers.attach(on_ready, self.console.screen() if self.phase is Phase.IDLE else b"")

    @property
    def readers(self) -> tuple[ConsoleTap, ...]:
        return self._readers.taps if self._readers is not None else ()

    def console_input(self, data: bytes) -> None:
        if self.status is VMStatus.PAUSED:
            # the frozen guest reads nothing: a tty's worth is held, the rest dropped
            if self._held_input is None:
                self._held_input = bytearray()
            room = MAX_INPUT - len(self._held_input)
            if room > 0:
                self._held_input += data[:room]
        elif self.status is VMStatus.RUNNING:
            self.console.feed(data)

    @property
    def pumping(self) -> bool:
        return self._console is not None and self._console.pumping

    def can_pump(self) -> bool:
        return self.pumping and self.status is VMStatus.RUNNING and self.phase is Phase.IDLE

    def pump(self, max_bytes: int) -> None:
        self.console.pump(max_bytes)

    def wake_taps(self) -> None:
        if self._readers is not None:
            self._readers.wake()

    def _end_taps(self) -> None:
        if self._readers is not None:
            self._readers.end()
        display, self._display = self._display, None
        self._tty1 = None
        if display is not None:
            display.end()  # each viewer gets its last update, then the socket closes

    def emit(self, data: bytes) -> None:
        if self._readers is not None:
            self._readers.push(data)

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        """A console timer: held while the guest is frozen, dropped if it powers off."""

        def fire() -> None:
            if self.status in (VMStatus.PAUSED, VMStatus.SUSPENDED):
                if self._deferred is None:
                    self._deferred = []
                self._deferred.append(callback)
            else:
                callback()

        self._at(delay, fire)

    def now(self) -> float:
        return self._clock.time()

    def flood_started(self) -> None:
        self.wake_taps()

    def disk_written(self, nbytes: int) -> None:
        self._disk_written += nbytes

    # The screen (simulator.screen): tty1 on a VGA text console, served over RFB

    def open_screen(self, reactor: Reactor | None) -> socket.socket:
        """A new viewer of the screen: a socket whose other end speaks RFB 3.8, served
        on ``reactor``. ``VMNotRunning`` unless the VM runs or is paused (a paused
        VM's screen is frozen: no updates, keys dropped, until it resumes)."""
        if self.status not in (VMStatus.RUNNING, VMStatus.PAUSED):
            raise VMNotRunning(f"VM {self.name!r} is {self.status.value}: its screen is not available")
        if reactor is None:
            raise RuntimeError("the simulator was given no event loop to serve screens on")
        if self._display is None:
            self._display = self._new_display()
        return self._display.open(reactor)

    def _new_display(self) -> Display:
        """The screen as it stands: this boot's log so far, then tty1's getty if the guest is up."""
        display = Display(self.name, self)
        if self._guest is Guest.DOWN:
            return display
        if not self._boots:
            self._boot_duration = self.spec.timings.boot  # a guest up from the start: its boot as nominal
        lines = self._boot_lines(self._guest is Guest.STUCK)
        shown = self._boot_shown if self._guest is Guest.BOOTING else len(lines)
        display.terminal.feed(b"".join(line for _, line in lines[:shown]))
        if self._guest is Guest.UP and self.phase is Phase.IDLE:
            self._tty1 = self._new_tty1(at_login=True)
            display.terminal.feed(self._tty1.login_banner())
        return display

    def _new_tty1(self, *, at_login: bool) -> Console:
        return Console(
            self.hostname,
            _on_tty1(self.spec.personality),
            _Tty1(self),
            self.spec.timings.login_failure_delay,
            memory_mib=self.spec.memory_mib,
            vcpus=self.spec.vcpus,
            at_login=at_login,
        )

    @property
    def screen(self) -> Display | None:
        return self._display

    @property
    def screen_frozen(self) -> bool:
        return self.status is not VMStatus.RUNNING

    def screen_keys(self, data: bytes) -> None:
        if self._tty1 is not None and self.status is VMStatus.RUNNING:
            self._tty1.feed(data)

    def screen_pump(self, max_bytes: int) -> bool:
        tty1 = self._tty1
        if tty1 is None or not tty1.pumping or self.status is not VMStatus.RUNNING or self.phase is not Phase.IDLE:
            return False
        return tty1.pump(max_bytes) > 0

    def ctrl_alt_del(self) -> None:
        """Ctrl-Alt-Del on the screen: systemd's ctrl-alt-del.target reboots the guest,
        the path of a graceful ``restart``."""
        self._log(Category.COMMAND, "ctrl-alt-del pressed on the screen: the guest reboots")
        self.perform(Action.RESTART, False, lambda outcome: None)

    def tty1_output(self, data: bytes) -> None:
        if self._display is not None:
            self._display.feed(data)


def _on_tty1(personality: Personality) -> Personality:
    return dataclasses.replace(personality, tty="tty1")


class _Tty1:
    """The machine as tty1's console sees it: like the serial one, but it prints on the screen."""

    __slots__ = ("_machine",)

    def __init__(self, machine: Machine) -> None:
        self._machine = machine

    def emit(self, data: bytes) -> None:
        self._machine.tty1_output(data)

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self._machine.later(delay, callback)

    def now(self) -> float:
        return self._machine.now()

    def uptime(self) -> float:
        return self._machine.uptime()

    def flood_started(self) -> None:
        if self._machine.screen is not None:
            self._machine.screen.wake()

    def kernel_log(self) -> list[str]:
        return self._machine.kernel_log()

    def disk_written(self, nbytes: int) -> None:
        self._machine.disk_written(nbytes)
