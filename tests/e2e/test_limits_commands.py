"""Command limits end to end: 4 outstanding per user per VM, and a departed sender's
queued commands dropped, so another operator is not kept waiting behind them."""

from __future__ import annotations

import logging
import os

import pytest

from tests.e2e.client import client, running_server, token

pytestmark = pytest.mark.asyncio

SLOW_RESTARTS = """
[[vm]]
name = "slow-1"
status = "running"
timings = { reboot_shutdown = "2s" }
"""


async def test_a_users_queue_is_capped_and_dropped_when_it_leaves_so_another_operator_goes_next(
    tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vmws")
    scenario = os.path.join(tmp_path, "slow.toml")
    with open(scenario, "w", encoding="utf-8") as fh:
        fh.write(SLOW_RESTARTS)
    async with running_server(speed=1, scenario=scenario) as server:
        async with client(server, "slow-1", tok=token(sub="bob")) as bob:
            await bob.recv("status")
            async with client(server, "slow-1") as alice:
                await alice.recv("status")
                for n in range(1, 7):
                    await alice.send("command", {"action": "restart", "requestId": f"a{n}"})
                refused = [(await alice.recv("error"))["data"] for _ in range(2)]
                assert [e["requestId"] for e in refused] == ["a5", "a6"]
                for e in refused:
                    assert e["code"] == "INVALID_COMMAND" and "at most 4 per user per VM" in e["message"]
                # alice leaves with a1 running and a2-a4 queued.
            answer = await bob.command("pause", "b1")
            assert answer["success"] is True and answer["status"] == "paused"
    lines = [r.getMessage() for r in caplog.records]
    assert any("(a1) succeeded" in line for line in lines), lines  # the running one completes
    for request_id in ("a2", "a3", "a4"):
        assert any(f"({request_id}) dropped: its sender left" in line for line in lines), lines
        assert not any(f"({request_id}) succeeded" in line for line in lines), lines
    # Nothing stays behind for alice or the VM.
    assert not server.hub._outstanding and not server.hub._waiting and len(server.hub._command_locks) == 0
