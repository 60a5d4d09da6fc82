"""Nothing lost: console offsets and ?since=, input exactly once, slow viewers, outcomes."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from tests.e2e.client import Client, client, running_server
from tests.e2e.test_console import login
from tests.e2e.test_limits_console import stalled_viewer

pytestmark = pytest.mark.asyncio


async def collect_until(c: Client, needle: str, timeout: float = 30) -> dict[int, str]:
    """Console messages by offset until ``needle`` shows up in the joined text."""
    chunks: dict[int, str] = {}
    joined = ""
    async with asyncio.timeout(timeout):
        while needle not in joined[-len(needle) - 64 * 1024 :]:
            data = (await c.recv("console"))["data"]
            chunks[data["offset"]] = data["content"]
            joined += data["content"]
    return chunks


def stitch(chunks: dict[int, str]) -> tuple[int, bytes]:
    """Join chunks by offset, asserting no gap and no overlap."""
    first = min(chunks)
    out = bytearray()
    for offset in sorted(chunks):
        assert offset == first + len(out), f"gap or overlap at {offset} (have up to {first + len(out)})"
        out += chunks[offset].encode()
    return first, bytes(out)


async def test_reconnect_with_since_mid_flood_loses_and_repeats_nothing() -> None:
    async with running_server(scrollback_bytes=16 * 1024 * 1024) as server:
        async with client(server, "web-2", console=True) as reference:
            await login(reference, "web-2")
            # The viewer that drops joins before the flood starts: joined later it gets the
            # held output in one message, and where the owner runs on another node (a
            # cluster) nothing paces the flood, so that one message can be all of it.
            dropped = client(server, "web-2", console=True)
            first_half: dict[int, str] = {}
            async with dropped as d:
                await d.recv("connection")
                await reference.send("console_input", {"content": "seq 60000\n"})
                while sum(len(v) for v in first_half.values()) < 100_000:
                    data = (await d.recv("console"))["data"]
                    first_half[data["offset"]] = data["content"]
            # The socket is gone mid-flood; come back from where we were.
            resume_at = max(first_half) + len(first_half[max(first_half)].encode())
            async with client(server, "web-2", console=True, since=str(resume_at)) as again:
                second_half = await collect_until(again, "\r\n60000\r\n")
            ref_chunks = await collect_until(reference, "\r\n60000\r\n")
        start, transcript = stitch({**first_half, **second_half})
        ref_start, ref = stitch(ref_chunks)
        # Byte for byte the same as the viewer that never left, over the whole overlap.
        overlap_from = max(start, ref_start)
        end = min(start + len(transcript), ref_start + len(ref))
        assert end - overlap_from > 300_000
        assert transcript[overlap_from - start : end - start] == ref[overlap_from - ref_start : end - ref_start]
        numbers = [int(x) for x in re.findall(rb"\r\n(\d+)(?=\r\n)", transcript)]
        assert numbers[-1] == 60000 and numbers == list(range(numbers[0], 60001))


async def test_input_from_several_viewers_arrives_once_in_order() -> None:
    async with running_server() as server:
        async with (
            client(server, "web-3", console=True) as a,
            client(server, "web-3", console=True) as b,
            client(server, "web-3", console=True) as c,
        ):
            await login(a, "web-3")

            async def type_lines(viewer: Client, tag: str) -> None:
                for n in range(15):
                    await viewer.send("console_input", {"content": f"echo {tag}{n}\n"})

            await asyncio.gather(type_lines(a, "A"), type_lines(b, "B"), type_lines(c, "C"))
            await a.send("console_input", {"content": "echo DONE\n"})
            text = await a.read_console_until("\r\nDONE\r\n", timeout=30)
        outputs = [line for line in text.split("\r\n") if re.fullmatch(r"[ABC]\d+", line)]
        for tag in "ABC":
            mine = [int(line[1:]) for line in outputs if line[0] == tag]
            assert mine == list(range(15)), (tag, mine)  # each exactly once, in the order typed


async def test_slow_viewer_is_cut_off_without_slowing_others() -> None:
    bound = 256 * 1024
    async with running_server(max_pending_bytes=bound, scrollback_bytes=4096) as server:
        # The slow viewer completes the handshake and then never reads.
        _, writer = await stalled_viewer(server.port, "web-4")
        async with client(server, "web-4", console=True) as fast:
            await login(fast, "web-4")
            viewers = lambda: [p for p in server.hub.peers if getattr(p, "vm", "") == "web-4"]  # noqa: E731
            assert len(viewers()) == 2
            peak = 0
            await fast.send("console_input", {"content": "yes flooding-the-console\n"})
            received = 0
            async with asyncio.timeout(60):
                while len(viewers()) == 2:  # until the slow one is cut off
                    data = (await fast.recv("console"))["data"]
                    received += len(data["content"])
                    peak = max(peak, *(getattr(p, "_pending", 0) for p in viewers()))
            await fast.send("console_input", {"content": "\x03"})
            await fast.read_console_until("admin@web-4:~$ ")  # the fast viewer kept up all along
            assert received > bound
            # What the slow viewer held never exceeded its bound by more than one message.
            assert peak <= bound + 64 * 1024
        writer.close()


async def test_a_command_outcome_survives_the_client_leaving(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vmws")
    async with running_server(speed=2) as server:
        async with client(server, "web-5") as c:
            await c.recv("status")
            await c.send("command", {"action": "stop", "requestId": "gone-1"})
        # Disconnected before the response; the stop still completes...
        async with client(server, "web-5") as again:
            async with asyncio.timeout(15):
                while (await again.recv("status"))["data"]["status"] != "stopped":
                    pass
    # ... and its outcome is in the log, under the request id.
    lines = [r.getMessage() for r in caplog.records if "gone-1" in r.getMessage()]
    assert any("stop" in line and "succeeded" in line and "stopped" in line for line in lines), lines
