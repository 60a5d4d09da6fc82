"""Autobahn TestSuite conformance (through the ``kosoku`` runner) on both endpoints.

vmws is no echo server, and it speaks first (``connection``, ``status``...), so the
cases run are those whose verdict needs no echo — pings and pongs (2.*), reserved bits
(3.*), opcodes (4.*), invalid UTF-8 (6.*), close handling (7.*) — and the verdict is
computed from the runner's record of frames with vmws's own JSON messages left out.
Cases whose expectation is an echoed message are not counted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kosoku import FailureError, run_fuzzingclient

from tests.e2e.client import running_server, ws_url

pytestmark = pytest.mark.asyncio

SECTIONS = ["2.*", "3.*", "4.*", "6.*", "7.*"]


def _ours(frame: Any) -> bool:
    """A text message from vmws itself (a protocol envelope), not part of the case."""
    if frame[0] != "message":
        return False
    try:
        return isinstance(json.loads(frame[1]), dict) and "type" in json.loads(frame[1])
    except (ValueError, TypeError):
        return False


def _needs_echo(expected: dict[str, list[Any]]) -> bool:
    return any(frame[0] == "message" for frames in expected.values() for frame in frames)


def verdict(result: Any) -> str | None:
    """None when the case passes (or needs an echo, so cannot be judged here)."""
    if _needs_echo(result.expected):
        return None
    received = [tuple(f) for f in result.received if not _ours(f)]
    if (
        not any(received == [tuple(f) for f in frames] for frames in result.expected.values())
        and result.behavior.value != "INFORMATIONAL"
    ):
        return f"received {received}, expected {result.expected}"
    if result.behavior_close.value not in ("OK", "INFORMATIONAL"):
        return f"closing handshake {result.behavior_close.value}: {result.result_close}"
    return None


@pytest.mark.parametrize("console", [False, True], ids=["monitor", "console"])
async def test_autobahn_cases_that_need_no_echo(console: bool) -> None:
    # The runner opens 8 sockets at once as one user; one just closed by the client may
    # still hold its seat on a loaded machine, so the per-user console cap (8) is raised.
    async with running_server(
        max_message_rate=1_000_000, metrics_interval=60, max_console_viewers_per_user=32
    ) as server:
        url = ws_url(server, "web-1", console=console)
        try:
            results = await run_fuzzingclient(url, cases=SECTIONS, concurrency=8)
        except FailureError as failure:  # judged below, with our own messages left out
            results = failure.results
    judged = [r for r in results if not _needs_echo(r.expected)]
    failures = {r.case_id: v for r in judged if (v := verdict(r)) is not None}
    assert len(judged) > 80, len(judged)
    assert not failures, failures
