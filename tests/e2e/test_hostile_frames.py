"""Random frames over a real socket: answered, never an exception, never a dropped neighbour."""

from __future__ import annotations

import asyncio
import json
import logging
import random

import pytest

from tests.e2e.client import client, running_server

pytestmark = pytest.mark.asyncio


def random_frame(rng: random.Random) -> str | bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if kind == 1:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x3000)])) for _ in range(40))
    values = [None, True, 3, -1.5, "x", [], {}, "start", "console_input", 10**30, "\u202e", "A" * 300]
    data = {k: rng.choice(values) for k in rng.sample(["action", "requestId", "force", "content"], rng.randrange(5))}
    message = {"type": rng.choice(["command", "console_input", "heartbeat", "status", *values[:5]]), "data": data}
    if rng.random() < 0.3:
        message["data"] = rng.choice(values)
    if rng.random() < 0.2:
        message["timestamp"] = rng.choice(values)
    return json.dumps(message)


@pytest.mark.parametrize("console", [False, True])
async def test_random_frames(console: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rng = random.Random(1234 + console)
    async with (
        running_server(max_message_rate=10_000) as server,
        client(server, "web-1", console=console) as fuzzer,
        client(server, "web-1") as neighbour,
    ):
        await fuzzer.recv("connection")
        await neighbour.recv("status")
        for _ in range(300):
            await fuzzer.ws.send(random_frame(rng))
        await fuzzer.send("heartbeat", {"end": True})
        answers = []
        async with asyncio.timeout(30):
            while True:
                message = await fuzzer.recv()
                if message["type"] == "heartbeat" and message["data"] == {"end": True}:
                    break
                answers.append(message)
        errors = [m["data"]["code"] for m in answers if m["type"] == "error"]
        assert errors and set(errors) <= {"INVALID_COMMAND", "AUTH_ERROR"}
        assert all(
            m["type"] in ("error", "response", "heartbeat", "status", "metrics", "console", "viewers") for m in answers
        )
        # The neighbour never noticed.
        await neighbour.send("heartbeat", {"ok": 1})
        while (await neighbour.recv("heartbeat"))["data"] != {"ok": 1}:
            pass
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(("vmws", "tornado"))]
    assert not bad, [r.getMessage() for r in bad]
