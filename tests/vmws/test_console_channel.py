"""ConsoleChannel on a fake stream and fake peers: pacing follows the fastest live
viewer, closing viewers leave at once, typed input is bounded in bytes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.vmws.fakes import FakePeer, FakeStream, settle, until
from vmws.console_channel import ConsoleChannel
from vmws.scrollback import Scrollback

pytestmark = pytest.mark.asyncio


def make_channel(stream: FakeStream) -> ConsoleChannel:
    return ConsoleChannel("vm-1", stream, Scrollback(4096), lambda: 0.0, lambda channel: None)


async def test_a_viewer_being_closed_does_not_count_as_keeping_up() -> None:
    """Regression: the stalled viewer, once cut off, stayed among the viewers until its
    socket was torn down; its backlog then read 0, pacing stopped, and the reader flooded
    the fast viewer until it was cut off too."""
    stream = FakeStream()
    channel = make_channel(stream)
    fast, stalled = FakePeer("alice", "fast"), FakePeer("bob", "stalled")
    channel.add_viewer(fast)
    channel.add_viewer(stalled)
    fast.pending_bytes = 200 * 1024  # behind, but reading
    stalled.close(4008, "client too slow")
    stalled.pending_bytes = 0  # its socket is gone: nothing is pending any more
    stream.flood = b"y\r\n" * 1000
    await settle(200)
    await asyncio.sleep(0.05)  # the pacing poll gets its turns too
    # Paced on the fast viewer: one message, then the reader waits for it to catch up.
    assert len(fast.of_type("console")) == 1
    assert stalled not in channel.viewers
    fast.pending_bytes = 0  # it caught up
    await until(lambda: len(fast.of_type("console")) > 1)
    stream.flood = None
    await channel.close()


async def test_pacing_follows_the_fastest_live_viewer() -> None:
    stream = FakeStream()
    channel = make_channel(stream)
    slow, fast = FakePeer("a", "slow"), FakePeer("b", "fast")
    channel.add_viewer(slow)
    channel.add_viewer(fast)
    slow.pending_bytes = 3 * 1024 * 1024  # will be cut off at its bound elsewhere
    stream.flood = b"x" * 1000
    await settle(50)
    assert len(fast.of_type("console")) > 1  # the slow one does not hold the fast one back
    stream.flood = None
    await channel.close()


async def test_closing_viewers_leave_the_count_at_once() -> None:
    channel = make_channel(FakeStream())
    peers = [FakePeer("alice", str(n)) for n in range(3)]
    for peer in peers:
        channel.add_viewer(peer)
    assert channel.viewer_count() == 3 and channel.viewer_count("alice") == 3 and channel.viewer_count("bob") == 0
    peers[1].close(4010, "heartbeat timeout")
    assert channel.viewer_count("alice") == 2 and peers[1] not in channel.viewers
    await channel.close()


async def test_typed_input_is_bounded_in_bytes_and_the_excess_dropped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vmws")
    stream = FakeStream()
    stream.write_gate.clear()  # the guest takes nothing for now
    channel = make_channel(stream)
    kib = "é" * 512  # 1 KiB once encoded
    for _ in range(200):
        channel.write(kib)
    await settle()
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    stream.write_gate.set()
    await settle(400)
    # 64 KiB of the 200 were held and reach the guest in order, exactly once; the rest were dropped.
    assert b"".join(stream.written) == kib.encode() * 64
    channel.write("ls\n")  # drained: input is taken again
    await settle()
    assert stream.written[-1] == b"ls\n"
    await channel.close()


async def test_a_lone_viewer_behind_pauses_the_reader_until_it_catches_up() -> None:
    stream = FakeStream()
    channel = make_channel(stream)
    viewer = FakePeer("alice")
    channel.add_viewer(viewer)
    viewer.pending_bytes = 129 * 1024  # just over the pace: the reader must wait for it
    stream.flood = b"z" * 1000
    await until(lambda: len(viewer.of_type("console")) == 1)
    reads = stream.reads
    await settle(200)
    assert stream.reads == reads and len(viewer.of_type("console")) == 1  # nothing read while it is behind
    viewer.pending_bytes = 0
    await until(lambda: len(viewer.of_type("console")) > 3)  # caught up: reading resumes
    offsets = [m["offset"] for m in viewer.of_type("console")]
    assert offsets == sorted(offsets) and offsets[1] - offsets[0] == 1000  # nothing skipped
    stream.flood = None
    await channel.close()


async def test_when_the_stream_ends_viewers_get_eof_and_1000_and_later_input_is_dropped() -> None:
    stream = FakeStream()
    finished: list[ConsoleChannel] = []
    channel = ConsoleChannel("vm-1", stream, Scrollback(4096), lambda: 0.0, finished.append)
    viewer = FakePeer("alice")
    channel.add_viewer(viewer)
    stream.output.put_nowait(b"bye\r\n")
    stream.output.put_nowait(b"")  # the VM stopped
    await until(lambda: channel.finished)
    assert [m["content"] for m in viewer.of_type("console")] == ["bye\r\n", ""]
    assert viewer.of_type("console")[-1]["eof"] is True and viewer.closed_with == (1000, "console closed: VM stopped")
    assert finished == [channel] and not channel.viewers
    channel.write("typed too late\n")  # a socket's last message, racing its close
    await settle()
    assert stream.written == []
    # A viewer that joins a finished channel is told at once.
    late = FakePeer("bob")
    channel.add_viewer(late)
    assert late.of_type("console")[0]["eof"] is True and late.closed_with is not None
    await channel.close()


async def test_every_viewer_gets_the_whole_list_on_join_and_leave() -> None:
    from vmws.presence import ConsoleMode

    channel = make_channel(FakeStream())
    alice, bob, carol = FakePeer("alice", "a"), FakePeer("bob", "b"), FakePeer("carol", "c")
    channel.add_viewer(alice)
    channel.add_viewer(bob, mode=ConsoleMode.WATCH)
    channel.add_viewer(carol)

    def users(peer: FakePeer) -> list[list[tuple[str, str]]]:
        return [[(v["user"], v["mode"]) for v in data["viewers"]] for data in peer.of_type("viewers")]

    everyone = [("alice", "interactive"), ("bob", "watch"), ("carol", "interactive")]
    assert users(alice)[-1] == everyone and users(bob)[-1] == everyone and users(carol) == [everyone]
    carol.close(4008, "client too slow")  # being closed: no longer listed, and told nothing more
    channel.remove_viewer(carol)
    assert users(alice)[-1] == users(bob)[-1] == [("alice", "interactive"), ("bob", "watch")]
    assert len(users(carol)) == 1
    channel.remove_viewer(carol)  # twice: nothing more is sent
    assert len(users(alice)) == 4
    await channel.close()


async def test_a_very_long_user_name_is_cut_in_the_list() -> None:
    channel = make_channel(FakeStream())
    peer = FakePeer("u" * 70_000)
    channel.add_viewer(peer)
    (listed,) = peer.of_type("viewers")[-1]["viewers"]
    assert listed["user"] == "u" * 255 + "…"
    await channel.close()
