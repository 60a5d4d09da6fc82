"""The end-to-end protocol suite, unchanged, through HAProxy (round-robin) against a
3-node cluster (``--shard k/3``, one Redis): every test of the modules below runs with
``running_server`` swapped for a cluster whose ``port`` is HAProxy's. Any connection may
land on any node, so most sockets reach their VM through the relay.

Left out, and why (``EXCLUDED``): tests that look inside the one in-process server
(``server.hub``, ``server.backend``); tests of per-node per-user limits, which behind
a round-robin balancer hold per node (docs/cluster.md): a user's N sockets spread over 3
nodes never meet one node's cap; and one that takes input typed on two sockets a moment
apart to arrive in that order, which holds on one node but not across nodes.
"""

from __future__ import annotations

import contextlib
import inspect
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from loadtests.cluster_procs import start_haproxy, start_redis
from tests.e2e import client as e2e_client
from tests.e2e import (
    test_access, test_console, test_console_filter, test_credentials, test_faults, test_hostile_frames, test_http,
    test_limits_commands, test_limits_console, test_monitor, test_nothing_lost,
)
from vmws.app import Server
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.asyncio]

MODULES: list[ModuleType] = [
    test_monitor, test_console, test_nothing_lost, test_access, test_console_filter, test_credentials, test_faults,
    test_hostile_frames, test_http, test_limits_commands, test_limits_console,
]
EXCLUDED: dict[str, str] = {
    "test_monitor.test_command_without_control_is_refused_and_connection_stays":
        "looks inside the one in-process server (server.backend)",
    "test_nothing_lost.test_slow_viewer_is_cut_off_without_slowing_others":
        "looks inside the one in-process server (server.hub.peers)",
    "test_limits_console.test_a_stalled_viewer_cut_off_never_takes_the_reading_one_with_it":
        "looks inside the one in-process server (server.hub)",
    "test_limits_console.test_the_slow_viewer_bound_counts_bytes_not_characters":
        "looks inside the one in-process server (server.hub)",
    "test_limits_console.test_refused_console_requests_for_unknown_vms_leave_nothing_in_the_hub":
        "looks inside the one in-process server (server.hub)",
    "test_nothing_lost.test_input_from_several_viewers_arrives_once_in_order":
        "its end marker is typed by one viewer right after the others' last line: input from sockets on "
        "different nodes reaches the owner in the order Redis received it, so another node's lines may still "
        "be on the way (each viewer's input arrives once and in order: tests/cluster/test_relay.py)",
    "test_access.test_connection_limits_per_user_and_per_console":
        "per-node limit: --max-connections-per-user and the console caps count per node",
    "test_limits_console.test_one_user_holds_at_most_eight_console_sockets_per_vm_and_others_still_get_in":
        "per-node limit: --max-console-viewers-per-user counts per node",
}


class ClusterServer:
    """What the e2e client needs of a server: its port (HAProxy's here)."""

    def __init__(self, port: int, nodes: list[Server]) -> None:
        self.port = port
        self.nodes = nodes


@contextlib.asynccontextmanager
async def cluster_server(speed: float = 20.0, **overrides: Any) -> AsyncIterator[ClusterServer]:
    settings: dict[str, Any] = {"port": 0, "jwt_secret": e2e_client.SECRET, "metrics_interval": 0.2, "speed": speed}
    settings.update(overrides)
    with tempfile.TemporaryDirectory(prefix="vmws-e2e-cluster-") as tmp:
        redis = start_redis(Path(tmp) / "redis")
        nodes: list[Server] = []
        try:
            for k in (1, 2, 3):
                config = Config(**settings, redis_url=redis.url, node_name=f"node-{k}", shard=f"{k}/3")
                node = Server(config, SimulatorBackend.from_config(config))
                await node.start()
                nodes.append(node)
            haproxy = start_haproxy(Path(tmp) / "haproxy", [node.port for node in nodes])
            try:
                yield ClusterServer(haproxy.port, nodes)
            finally:
                haproxy.stop()
        finally:
            for node in nodes:
                await node.stop()
            redis.stop()


def _cases() -> list[Any]:
    cases = []
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[-1]
        for name, func in inspect.getmembers(module, inspect.iscoroutinefunction):
            if not name.startswith("test_") or inspect.signature(func).parameters:
                continue  # (tests taking fixtures or parameters are not run here)
            key = f"{short}.{name}"
            marks = [pytest.mark.skip(reason=EXCLUDED[key])] if key in EXCLUDED else []
            cases.append(pytest.param(module, name, id=key, marks=marks))
    return cases


@pytest.mark.parametrize(("module", "name"), _cases())
async def test_through_haproxy_on_3_nodes(module: ModuleType, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "running_server", cluster_server)
    await getattr(module, name)()
