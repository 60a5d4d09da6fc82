"""The libvirtd lock of the fault tests, across real processes: a restart waits for the
tests using the daemon, tests wait for a restart, and two restarters that both held the
daemon steady take turns instead of waiting for each other."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from multiprocessing.queues import Queue
from pathlib import Path

from tests.harness.daemon import DaemonLock

Events = Queue  # of (who, what, monotonic seconds)


def _steady(directory: str, who: str, hold: float, events: Events) -> None:
    lock = DaemonLock(Path(directory))
    with lock.steady():
        events.put((who, "steady", time.monotonic()))
        time.sleep(hold)
        events.put((who, "releasing", time.monotonic()))


def _restart(directory: str, who: str, steady_first: bool, events: Events) -> None:
    lock = DaemonLock(Path(directory))
    with contextlib.ExitStack() as stack:
        if steady_first:  # held like a test's autouse fixture does
            stack.enter_context(lock.steady())
            time.sleep(0.3)
        with lock.exclusive(settle=0.0):
            events.put((who, "exclusive", time.monotonic()))
            time.sleep(0.5)
            events.put((who, "releasing", time.monotonic()))


def _run(*targets: tuple[object, tuple[object, ...]], delays: tuple[float, ...]) -> dict[tuple[str, str], float]:
    context = multiprocessing.get_context("spawn")
    events: Events = context.Queue()
    processes = []
    for (target, args), delay in zip(targets, delays, strict=True):
        process = context.Process(target=target, args=(*args, events))
        process.start()
        processes.append(process)
        time.sleep(delay)
    for process in processes:
        process.join(30)
        if process.exitcode is None:
            process.terminate()  # stuck waiting: the failure below says so
        assert process.exitcode == 0, "a process did not finish: the lock holders waited for each other"
    seen: dict[tuple[str, str], float] = {}
    while not events.empty():
        who, what, at = events.get()
        seen[(who, what)] = at
    return seen


def test_a_restart_waits_for_users_and_users_wait_for_it(tmp_path: Path) -> None:
    d = str(tmp_path)
    seen = _run(
        (_steady, (d, "user", 1.5)),
        (_restart, (d, "restart", False)),
        (_steady, (d, "late", 0.1)),
        delays=(1.0, 0.5, 0.0),
    )
    # The restart came after the user let go; the late user, queued behind it, after it.
    assert seen[("restart", "exclusive")] >= seen[("user", "releasing")]
    assert seen[("late", "steady")] >= seen[("restart", "releasing")]


def test_two_restarters_holding_it_steady_take_turns(tmp_path: Path) -> None:
    d = str(tmp_path)
    seen = _run((_restart, (d, "a", True)), (_restart, (d, "b", True)), delays=(0.0, 0.0))
    first, second = sorted("ab", key=lambda w: seen[(w, "exclusive")])
    assert seen[(second, "exclusive")] >= seen[(first, "releasing")]
