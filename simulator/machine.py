"""One simulated VM: its status, its transitions in clock time, its console readers.

Transitions follow the action table in ``vmws.backend`` and take clock time (jittered
by the seeded generator). Powering on makes the VM ``running`` at once — as libvirt
reports a domain running as soon as QEMU starts — so its console can be opened to
watch the boot log; the action completes (``done`` is called) when getty prints the
login prompt. A graceful stop prints systemd's shutdown lines and then powers off;
``force`` pulls the plug. Suspending saves the guest (its console state survives a
restore); pausing freezes it (typed input and timers wait for the resume).

Every status change, and the uptime reset of a restart, is reported through
``notify``. Console output goes to every open ``ConsoleTap``; when the VM stops,
crashes or is suspended its taps reach eof.
"""

from __future__ import annotations

import enum
import functools
import random
from collections.abc import Callable

from simulator.bootlog import boot_log, shutdown_log
from simulator.console import Console
from simulator.fleet import VMSpec
from simulator.metrics import Activity, sample_metrics
from vmws.backend import Action, MetricsSample, VMInfo, VMStatus
from vmws.clock import Clock, Timer
from vmws.errors import CommandFailed, VMNotRunning

__all__ = ["Phase", "Machine", "ConsoleTap", "Done", "CHUNK", "TAP_LIMIT"]

CHUNK = 64 * 1024  # the most flood output one read produces
TAP_LIMIT = 4 * CHUNK  # a flood waits while any reader has this much unread

Done = Callable[[VMInfo], None]


class Phase(enum.Enum):
    """What the machine is busy with; IDLE when no transition is under way."""

    IDLE = "idle"
    BOOTING = "booting"
    SHUTTING_DOWN = "shutting down"
    REBOOTING = "rebooting"
    DESTROYING = "powering off"
    SAVING = "saving"
    RESTORING = "restoring"
    PAUSING = "pausing"
    RESUMING = "resuming"


class _Step(enum.Enum):
    NOOP = "no-op"
    REFUSE = "refuse"  # VMNotRunning
    POWER_ON = "power on"
    SHUTDOWN = "shutdown"  # graceful, or a destroy with force
    DESTROY = "destroy"
    REBOOT = "reboot"
    SAVE = "save"
    RESTORE = "restore"
    PAUSE = "pause"
    UNPAUSE = "unpause"


_R, _S, _P, _U, _E = VMStatus.RUNNING, VMStatus.STOPPED, VMStatus.PAUSED, VMStatus.SUSPENDED, VMStatus.ERROR
_X = _Step.REFUSE
# The action table of vmws.backend, cell by cell.
_TABLE: dict[Action, dict[VMStatus, _Step]] = {
    Action.START: {_R: _Step.NOOP, _S: _Step.POWER_ON, _P: _Step.UNPAUSE, _U: _Step.RESTORE, _E: _Step.POWER_ON},
    Action.STOP: {_R: _Step.SHUTDOWN, _S: _Step.NOOP, _P: _Step.DESTROY, _U: _Step.DESTROY, _E: _Step.DESTROY},
    Action.RESTART: {_R: _Step.REBOOT, _S: _X, _P: _X, _U: _X, _E: _X},
    Action.SUSPEND: {_R: _Step.SAVE, _S: _X, _P: _Step.SAVE, _U: _Step.NOOP, _E: _X},
    Action.RESUME: {_R: _Step.NOOP, _S: _X, _P: _Step.UNPAUSE, _U: _Step.RESTORE, _E: _X},
    Action.PAUSE: {_R: _Step.PAUSE, _S: _X, _P: _Step.NOOP, _U: _X, _E: _X},
}


class ConsoleTap:
    """One reader of a VM's serial console (sans-I/O; the backend adapter awaits it).

    ``read`` returns what is buffered (topping it up from a running flood, at most
    ``CHUNK`` at a time), ``b""`` when there is nothing yet; ``eof`` tells the two
    apart. ``on_ready`` is called whenever a ``read`` may have something new.
    """

    def __init__(self, machine: Machine, on_ready: Callable[[], None]) -> None:
        self._machine = machine
        self._on_ready = on_ready
        self._buf = bytearray()
        self.eof = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def read(self) -> bytes:
        machine = self._machine
        if not self.eof and len(self._buf) < CHUNK and machine.can_pump():
            machine.console.pump(CHUNK - len(self._buf))
        data = bytes(self._buf)
        self._buf.clear()
        if data and machine.console.flooding:
            machine.wake_taps()  # a flood held back by this reader's backlog may go on
        return data

    def write(self, data: bytes) -> None:
        """Type into the console; input after eof is dropped, as on a closed line."""
        if not self.eof and data:
            self._machine.console_input(data)

    def close(self) -> None:
        if not self.eof:
            self._machine.detach(self)
            self._end()
        self._buf.clear()

    # Called by the machine

    def _push(self, data: bytes) -> None:
        self._buf += data
        self._on_ready()

    def _end(self) -> None:
        self.eof = True
        self._on_ready()

    def _wake(self) -> None:
        self._on_ready()


class Machine:
    def __init__(
        self,
        spec: VMSpec,
        clock: Clock,
        rng: random.Random,
        salt: int,
        notify: Callable[[VMInfo], None],
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._clock = clock
        self._rng = rng
        self._salt = salt
        self._notify = notify
        self.memory_total = spec.memory_mib * 1024 * 1024
        self.phase = Phase.IDLE
        self.console = Console(spec.name, spec.personality, self, spec.timings.login_failure_delay)
        self._taps: list[ConsoleTap] = []
        self._timers: list[Timer] = []
        self._deferred: list[Callable[[], None]] = []  # console timers that fell due while frozen
        self._held_input = bytearray()  # typed while paused
        self._boot_started = 0.0
        self._boot_duration = 1.0

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
            self.console.show_login()  # nobody is attached yet, so this prints nowhere
            self._run_acc = max(0.0, self.last_state_change - (now - age))
            if spec.status is VMStatus.RUNNING:
                self._booted_at, self._run_since, self._run_acc = now - age, now - age, 0.0
            elif spec.status is VMStatus.PAUSED:
                self._booted_at = now - age
            else:
                self._saved_uptime = self._run_acc

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

    def sample(self) -> MetricsSample:
        now = self._clock.time()
        progress = 1.0
        if self.status is VMStatus.PAUSED:
            activity = Activity.PAUSED
        elif self.status is not VMStatus.RUNNING:
            activity = Activity.OFF
        elif self.phase is Phase.BOOTING or self.phase is Phase.REBOOTING:
            activity = Activity.BOOTING
            progress = (now - self._boot_started) / self._boot_duration
        elif self.console.flooding:
            activity = Activity.FLOOD
        else:
            activity = Activity.IDLE
        return sample_metrics(
            salt=self._salt,
            name=self.name,
            now=now,
            running_seconds=self.running_seconds(),
            activity=activity,
            memory_total=self.memory_total,
            vcpus=self.spec.vcpus,
            boot_progress=progress,
        )

    # Actions (the table in vmws.backend)

    def perform(self, action: Action, force: bool, done: Done) -> None:
        """Begin ``action``; ``done`` gets the resulting info when it has finished
        (at once for a no-op). Raises ``VMNotRunning`` where the table says so and
        ``CommandFailed`` while another transition is under way."""
        if self.phase is not Phase.IDLE:
            raise CommandFailed(f"VM {self.name!r} is busy ({self.phase.value}); try again when it has finished")
        step = _TABLE[action][self.status]
        if step is _Step.REFUSE:
            raise VMNotRunning(f"VM {self.name!r} is {self.status.value}: cannot {action.value} it")
        if step is _Step.NOOP:
            done(self.info())
        elif step is _Step.SHUTDOWN and not force:
            self._shutdown(done)
        elif step in (_Step.SHUTDOWN, _Step.DESTROY):
            self._destroy(done)
        elif step is _Step.REBOOT:
            self._reboot(done, force)
        elif step is _Step.POWER_ON:
            self._power_on(done)
        elif step is _Step.SAVE:
            self._save(done)
        elif step is _Step.RESTORE:
            self._restore(done)
        elif step is _Step.PAUSE:
            self._pause(done)
        else:
            self._unpause(done)

    # Transitions

    def _jitter(self, nominal: float) -> float:
        return nominal * self._rng.uniform(0.8, 1.2)

    def _at(self, delay: float, callback: Callable[[], None]) -> None:
        self._timers.append(self._clock.call_later(delay, callback))

    def _finish(self, done: Done) -> None:
        self.phase = Phase.IDLE
        self._timers.clear()
        done(self.info())

    def _set_status(self, status: VMStatus) -> None:
        self.status = status
        self.last_state_change = self._clock.time()
        self._notify(self.info())

    def _print_lines(self, lines: list[tuple[float, bytes]], offset: float = 0.0) -> None:
        for delay, line in lines:
            self._at(offset + delay, functools.partial(self.emit, line))

    def _boot_sequence(self, done: Done, offset: float) -> None:
        """Kernel, systemd, getty: scheduled ``offset`` seconds from now."""
        duration = self._jitter(self.spec.timings.boot)
        self._boot_started = self._clock.time() + offset
        self._boot_duration = duration
        lines = boot_log(
            self.spec.personality,
            memory_mib=self.spec.memory_mib,
            vcpus=self.spec.vcpus,
            duration=duration,
            rng=self._rng,
        )
        self._print_lines(lines, offset)

        def login_prompt() -> None:
            self.console.show_login()
            self._finish(done)

        self._at(offset + duration, login_prompt)

    def _mark_booted(self) -> None:
        now = self._clock.time()
        self._booted_at = now
        self._run_acc = 0.0
        self._run_since = now

    def _power_on(self, done: Done) -> None:
        self.phase = Phase.BOOTING
        self.console.reset()
        self._mark_booted()
        self._set_status(VMStatus.RUNNING)
        self._boot_sequence(done, 0.0)

    def _reboot(self, done: Done, force: bool) -> None:
        self.phase = Phase.REBOOTING
        self.console.reset()
        delay = 0.0
        if not force:
            delay = self._jitter(self.spec.timings.reboot_shutdown)
            self._print_lines(shutdown_log(uptime=self.uptime(), duration=delay, reboot=True))

        def reset() -> None:
            self._mark_booted()
            # same status, but a new boot: watchers see uptime start again
            self._set_status(VMStatus.RUNNING)

        self._at(delay, reset)
        self._boot_sequence(done, delay)

    def _shutdown(self, done: Done) -> None:
        self.phase = Phase.SHUTTING_DOWN
        self.console.reset()  # the shell is gone; nothing reads the keyboard now
        duration = self._jitter(self.spec.timings.shutdown)
        self._print_lines(shutdown_log(uptime=self.uptime(), duration=duration, reboot=False))
        self._at(duration, lambda: self._powered_off(done))

    def _destroy(self, done: Done) -> None:
        self.phase = Phase.DESTROYING
        self._at(self._jitter(self.spec.timings.destroy), lambda: self._powered_off(done))

    def _powered_off(self, done: Done) -> None:
        self.console.reset()
        self._booted_at = None
        self._run_acc, self._run_since = 0.0, None
        self._deferred.clear()
        self._held_input.clear()
        self._end_taps()
        self._set_status(VMStatus.STOPPED)
        self._finish(done)

    def _settle(self, phase: Phase, nominal: float, status: VMStatus, done: Done, effect: Callable[[], None]) -> None:
        """A transition that is one step: after its duration, ``effect`` then ``status``."""
        self.phase = phase

        def land() -> None:
            effect()
            self._set_status(status)
            if status is VMStatus.RUNNING:
                self._thaw()
            self._finish(done)

        self._at(self._jitter(nominal), land)

    def _freeze_run(self) -> None:
        self._run_acc = self.running_seconds()
        self._run_since = None

    def _save(self, done: Done) -> None:
        def saved() -> None:
            self._saved_uptime = self.uptime()
            self._freeze_run()
            self._end_taps()  # QEMU exits after a managed save; its console goes with it

        self._settle(Phase.SAVING, self.spec.timings.save, VMStatus.SUSPENDED, done, saved)

    def _restore(self, done: Done) -> None:
        def restored() -> None:
            now = self._clock.time()
            self._booted_at = now - self._saved_uptime
            self._run_since = now

        self._settle(Phase.RESTORING, self.spec.timings.restore, VMStatus.RUNNING, done, restored)

    def _pause(self, done: Done) -> None:
        self._settle(Phase.PAUSING, self.spec.timings.pause, VMStatus.PAUSED, done, self._freeze_run)

    def _unpause(self, done: Done) -> None:
        def resumed() -> None:
            self._run_since = self._clock.time()

        self._settle(Phase.RESUMING, self.spec.timings.pause, VMStatus.RUNNING, done, resumed)

    def _thaw(self) -> None:
        """Back to running: run what waited while the guest was frozen."""
        deferred, self._deferred = self._deferred, []
        for callback in deferred:
            callback()
        if self._held_input:
            held = bytes(self._held_input)
            self._held_input.clear()
            self.console.feed(held)
        self.wake_taps()  # a flood interrupted by the pause may go on

    def halt(self) -> None:
        """The simulation is over: cancel what is scheduled, end the consoles."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.console.reset()
        self._end_taps()

    # Console plumbing (ConsoleHost for the Console, and the taps)

    def open_console(self, on_ready: Callable[[], None]) -> ConsoleTap:
        if self.status not in (VMStatus.RUNNING, VMStatus.PAUSED):
            raise VMNotRunning(f"VM {self.name!r} is {self.status.value}: its console is not available")
        tap = ConsoleTap(self, on_ready)
        if self.phase is Phase.IDLE:
            screen = self.console.screen()
            if screen:
                tap._push(screen)
        self._taps.append(tap)
        return tap

    def detach(self, tap: ConsoleTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)
            self.wake_taps()  # its backlog no longer holds a flood back

    def console_input(self, data: bytes) -> None:
        if self.status is VMStatus.PAUSED:
            self._held_input += data
        elif self.status is VMStatus.RUNNING:
            self.console.feed(data)

    def can_pump(self) -> bool:
        return (
            self.console.flooding
            and self.status is VMStatus.RUNNING
            and self.phase is Phase.IDLE
            and all(t.buffered < TAP_LIMIT for t in self._taps)
        )

    def wake_taps(self) -> None:
        for tap in self._taps:
            tap._wake()

    def _end_taps(self) -> None:
        taps, self._taps = self._taps, []
        for tap in taps:
            tap._end()

    def emit(self, data: bytes) -> None:
        for tap in self._taps:
            tap._push(data)

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        def fire() -> None:
            if self.status in (VMStatus.PAUSED, VMStatus.SUSPENDED):
                self._deferred.append(callback)
            else:
                callback()

        self._clock.call_later(delay, fire)

    def now(self) -> float:
        return self._clock.time()

    def flood_started(self) -> None:
        self.wake_taps()
