"""The hub on a fake backend and fake peers: command limits and order, departed senders,
viewer seats per user, and no per-name state left by refused requests."""

from __future__ import annotations

import logging

import pytest

from tests.vmws.fakes import FakeBackend, FakePeer, settle
from vmws import protocol
from vmws.backend import Action
from vmws.config import Config
from vmws.errors import AuthError, VMNotFound
from vmws.hub import Hub

pytestmark = pytest.mark.asyncio


def make_hub(backend: FakeBackend, **overrides: object) -> Hub:
    return Hub(backend, Config(jwt_secret="x" * 32, **overrides), now=lambda: 0.0)  # type: ignore[arg-type]


def command(action: str, request_id: str, force: bool = False) -> protocol.Command:
    return protocol.Command(Action(action), request_id, force)


def connected(hub: Hub, *users: str) -> list[FakePeer]:
    """One registered peer per user, as sockets are once open."""
    peers = [FakePeer(user) for user in users]
    for peer in peers:
        hub.register(peer)
    return peers


async def submit(hub: Hub, peer: FakePeer, *request_ids: str, action: str = "restart", vm: str = "vm-1") -> None:
    for request_id in request_ids:
        hub.spawn(hub.run_command(vm, command(action, request_id), peer))
    await settle()


async def test_a_user_gets_four_outstanding_commands_per_vm_and_the_excess_an_error_naming_the_limit() -> None:
    backend = FakeBackend(("vm-1", "vm-2"))
    hub = make_hub(backend)
    alice = FakePeer("alice")
    await submit(hub, alice, "a1", "a2", "a3", "a4", "a5", "a6")
    assert len(backend.started) == 1  # a1 runs, a2-a4 wait their turn
    errors = alice.of_type("error")
    assert [e["requestId"] for e in errors] == ["a5", "a6"]
    assert all(e["code"] == "INVALID_COMMAND" and "at most 4" in e["message"] for e in errors)
    # Another VM is another queue; another user is another count.
    await submit(hub, alice, "other-vm", vm="vm-2")
    bob = FakePeer("bob")
    await submit(hub, bob, "b1", action="pause")
    assert not bob.of_type("error") and len(alice.of_type("error")) == 2
    # In arrival order, one at a time: bob's waits behind alice's four only.
    for _ in range(6):
        backend.finish_next()
        await settle()
    answered = [r["requestId"] for r in alice.of_type("response")] + [r["requestId"] for r in bob.of_type("response")]
    assert sorted(answered) == sorted(["a1", "a2", "a3", "a4", "other-vm", "b1"])
    assert [r["requestId"] for r in alice.of_type("response") if r["requestId"] != "other-vm"] == [
        "a1",
        "a2",
        "a3",
        "a4",
    ]
    assert [action for vm, action, _ in backend.started if vm == "vm-1"] == [Action.RESTART] * 4 + [Action.PAUSE]
    # Once they are done the user may queue again, and the hub keeps nothing per VM or user.
    assert not hub._outstanding and not hub._waiting and len(hub._command_locks) == 0
    await submit(hub, alice, "a7")
    assert len(alice.of_type("error")) == 2
    backend.finish_next()
    await settle()


async def test_the_running_command_counts_and_a_forced_stop_cuts_in_within_the_limit() -> None:
    backend = FakeBackend()
    hub = make_hub(backend)
    alice = FakePeer("alice")
    await submit(hub, alice, "a1", "a2", "a3")
    hub.spawn(hub.run_command("vm-1", command("stop", "forced", force=True), alice))
    await settle()
    assert [action for _, action, _ in backend.started] == [Action.RESTART, Action.STOP]  # cut in at once
    await submit(hub, alice, "a5")
    assert [e["requestId"] for e in alice.of_type("error")] == ["a5"]
    while any(not g.is_set() for g in backend.gates) or len(backend.started) < 4:
        backend.finish_next()
        await settle()
    assert not hub._outstanding


async def test_a_departed_senders_queued_commands_are_dropped_and_the_next_user_goes_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vmws")
    backend = FakeBackend()
    hub = make_hub(backend)
    alice, bob = connected(hub, "alice", "bob")
    await submit(hub, alice, "a1", "a2", "a3", "a4")
    await submit(hub, bob, "b1")
    hub.unregister(alice)  # alice leaves with a1 running and a2-a4 queued
    await settle()
    backend.finish_next()  # a1 completes (its outcome is logged)
    await settle()
    # b1 runs right after a1: alice's queued restarts never reach the backend.
    assert len(backend.started) == 2
    backend.finish_next()
    await settle()
    assert [r["requestId"] for r in bob.of_type("response")] == ["b1"]
    assert len(backend.started) == 2
    lines = [r.getMessage() for r in caplog.records]
    for request_id in ("a2", "a3", "a4"):
        assert any(f"({request_id}) dropped" in line and "left" in line for line in lines), lines
    assert any("(a1) succeeded" in line for line in lines)
    assert not hub._outstanding and not hub._waiting and not hub._dropping and len(hub._command_locks) == 0


async def test_refused_console_requests_leave_no_per_name_state() -> None:
    backend = FakeBackend()
    hub = make_hub(backend)
    for n in range(2000):
        with pytest.raises(VMNotFound):
            await hub.console(f"{n:04d}-" + "x" * 200)
    assert len(hub._console_locks) == 0 and not hub._consoles and not hub._scrollbacks
    channel = await hub.console("vm-1")
    assert await hub.console("vm-1") is channel
    assert len(hub._console_locks) == 0  # only held while opening
    await hub.close()


async def test_a_user_holds_at_most_eight_seats_on_a_console_and_others_still_get_in() -> None:
    backend = FakeBackend()
    hub = make_hub(backend)
    channel = await hub.console("vm-1")
    mine = [FakePeer("alice", f"a{n}") for n in range(8)]
    for peer in mine:
        hub.admit_viewer(channel, "alice")
        channel.add_viewer(peer)
    with pytest.raises(AuthError) as refused:
        hub.admit_viewer(channel, "alice")
    assert refused.value.close_code == 4029 and "limit 8 per user" in refused.value.message
    hub.admit_viewer(channel, "bob")  # another user is let in
    mine[0].close(1000, "bye")  # a seat being given up is free at once
    hub.admit_viewer(channel, "alice")
    await hub.close()


async def test_the_console_cap_still_applies_across_users() -> None:
    backend = FakeBackend()
    hub = make_hub(backend, max_console_viewers=3, max_console_viewers_per_user=2)
    channel = await hub.console("vm-1")
    for n, user in enumerate(["a", "b", "c"]):
        hub.admit_viewer(channel, user)
        channel.add_viewer(FakePeer(user, str(n)))
    with pytest.raises(AuthError) as refused:
        hub.admit_viewer(channel, "d")
    assert refused.value.close_code == 4029 and "limit 3" in refused.value.message
    await hub.close()


async def test_a_sender_leaving_mid_command_lets_it_finish_unanswered_and_a_forced_stop_still_cuts_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vmws")
    backend = FakeBackend()
    hub = make_hub(backend)
    alice, bob = connected(hub, "alice", "bob")
    await submit(hub, alice, "a1")
    await submit(hub, bob, "b1")
    alice.close(1001, "gone")  # alice's socket closes while a1 runs
    hub.unregister(alice)
    hub.spawn(hub.run_command("vm-1", command("stop", "b-force", force=True), bob))
    await settle()
    # a1 keeps its turn (commands never overlap); the forced stop does not wait for it.
    assert backend.started == [("vm-1", Action.RESTART, False), ("vm-1", Action.STOP, True)]
    backend.finish_next()  # a1 ends: logged, answered to nobody
    await settle()
    assert alice.sent == []
    assert any("(a1) succeeded" in r.getMessage() for r in caplog.records)
    backend.finish_next()  # the forced stop
    await settle()
    assert [r["requestId"] for r in bob.of_type("response")] == ["b-force"]
    backend.finish_next()  # b1 ran after a1, in arrival order
    await settle()
    assert [r["requestId"] for r in bob.of_type("response")] == ["b-force", "b1"]
    assert [a for _, a, _ in backend.started] == [Action.RESTART, Action.STOP, Action.RESTART]
    assert not hub._outstanding and not hub._waiting and len(hub._command_locks) == 0
    assert hub.peers == {bob}


async def test_a_watcher_leaves_its_own_vm_and_the_sampler_stops_with_the_last_one() -> None:
    backend = FakeBackend(("vm-1", "vm-2"))
    hub = make_hub(backend)
    alice, bob = FakePeer("alice"), FakePeer("bob")
    await hub.add_watcher("vm-1", alice)
    await hub.add_watcher("vm-2", bob)
    assert [m["type"] for m in alice.sent] == ["status", "metrics"]
    assert set(hub._samplers) == {"vm-1", "vm-2"}
    hub.remove_watcher("vm-1", alice)
    await settle()
    assert set(hub._samplers) == {"vm-2"} and set(hub._watchers) == {"vm-2"}
    await hub.close()
