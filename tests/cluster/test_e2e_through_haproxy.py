"""The end-to-end protocol suite, unchanged, through HAProxy (round-robin) against a
3-node cluster (``--shard k/3``, one Redis): every test of the modules below runs with
``running_server`` swapped for a cluster whose ``port`` is HAProxy's. Any connection may
land on any node, so most sockets reach their VM through the relay.

Left out, and why (``EXCLUDED``): tests that look inside the one in-process server
(``server.hub``, ``server.backend``); tests of per-node per-user limits, which behind
a round-robin balancer hold per node (docs/cluster.md): a user's N sockets spread over 3
nodes never meet one node's cap; and one that takes input typed on two sockets a moment
apart to arrive in that order, which holds on one node but not across nodes; and the
node's HTTP deadlines, which HAProxy's own timeouts stand in front of.

Not run here: tests taking fixtures of the e2e suite's own (``tmux``, ``rs256``, ...;
parameters and pytest's ``tmp_path``, ``caplog``, ``monkeypatch`` are supplied);
``test_cli`` and ``test_logs`` (they start ``vmws serve`` processes of
their own and read their output), ``test_autobahn`` (the fuzzer against one node's
WebSocket framing, which the relay does not touch), ``test_consoleless_libvirt``
(libvirt's test driver, not simulator shards).
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
from tests.e2e import (
    client as e2e_client,
    test_access,
    test_console,
    test_console_filter,
    test_credentials,
    test_faults,
    test_hostile_frames,
    test_hostile_handshake,
    test_http,
    test_limits_commands,
    test_limits_console,
    test_monitor,
    test_nothing_lost,
)
from vmws.app import Server
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config

pytestmark = [pytest.mark.xdist_group("cluster"), pytest.mark.asyncio]

MODULES: list[ModuleType] = [
    test_monitor,
    test_console,
    test_nothing_lost,
    test_access,
    test_console_filter,
    test_credentials,
    test_faults,
    test_hostile_frames,
    test_hostile_handshake,
    test_http,
    test_limits_commands,
    test_limits_console,
]
EXCLUDED: dict[str, str] = {
    "test_monitor.test_command_without_control_is_refused_and_connection_stays": "looks inside the one in-process server (server.backend)",
    "test_credentials.test_an_admitted_connection_no_longer_holds_its_token_in_the_request": "looks inside the one in-process server (server.hub)",
    "test_nothing_lost.test_slow_viewer_is_cut_off_without_slowing_others": "looks inside the one in-process server (server.hub.peers)",
    "test_limits_console.test_a_stalled_viewer_cut_off_never_takes_the_reading_one_with_it": "looks inside the one in-process server (server.hub)",
    "test_limits_console.test_the_slow_viewer_bound_counts_bytes_not_characters": "looks inside the one in-process server (server.hub)",
    "test_limits_console.test_refused_console_requests_for_unknown_vms_leave_nothing_in_the_hub": "looks inside the one in-process server (server.hub)",
    "test_nothing_lost.test_input_from_several_viewers_arrives_once_in_order": "its end marker is typed by one viewer right after the others' last line: input from sockets on "
    "different nodes reaches the owner in the order Redis received it, so another node's lines may still "
    "be on the way (each viewer's input arrives once and in order: tests/cluster/test_relay.py)",
    "test_hostile_handshake.test_slowloris_headers_hit_a_total_deadline_a_trickle_does_not_extend": "the node's header deadline: HAProxy holds the client's connection under its own timeouts",
    "test_hostile_handshake.test_an_idle_keep_alive_connection_is_closed": "the node's idle deadline: HAProxy holds the client's connection under its own timeouts",
    "test_hostile_handshake.test_405_and_400_without_a_token_log_one_line_and_no_error": "counts access log lines: HAProxy's health checks add their own",
    "test_hostile_handshake.test_a_failure_at_any_step_of_open_closes_with_a_frame_and_releases_everything": "patches the one in-process server's steps and looks inside it",
    "test_hostile_handshake.test_names_over_255_bytes_are_not_found_without_being_quoted": "looks inside the one in-process server (server.hub); HAProxy refuses a 20,000-byte URL itself (400)",
    "test_hostile_handshake.test_a_sub_with_a_lone_surrogate_is_refused_and_leaves_no_peer": "looks inside the one in-process server (server.hub)",
    "test_hostile_handshake.test_refusals_quoting_long_unicode_names_close_cleanly_and_free_the_slot": "looks inside the one in-process server (server.hub)",
    "test_limits_commands.test_a_users_queue_is_capped_and_dropped_when_it_leaves_so_another_operator_goes_next": "looks inside the one in-process server (server.hub); its behaviour is tested across nodes in test_relay.py",
    "test_access.test_connection_limits_per_user_and_per_console": "per-node limit: --max-connections-per-user and the console caps count per node",
    "test_limits_console.test_one_user_holds_at_most_eight_console_sockets_per_vm_and_others_still_get_in": "per-node limit: --max-console-viewers-per-user counts per node",
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
                config = Config(
                    **settings,
                    redis_url=redis.url,
                    node_name=f"node-{k}",
                    shard=f"{k}/3",
                    trusted_proxies=("127.0.0.1/32",),  # HAProxy names the client (PROXY v2)
                )
                node = Server(config, SimulatorBackend.from_config(config))
                await node.start()
                nodes.append(node)
            haproxy = start_haproxy(Path(tmp) / "haproxy", [node.port for node in nodes], send_proxy_v2=True)
            try:
                yield ClusterServer(haproxy.port, nodes)
            finally:
                haproxy.stop()
        finally:
            for node in nodes:
                await node.stop()
            redis.stop()


# Fixtures a test may take here (pytest's own, asked for by name).
_FIXTURES = {"tmp_path", "caplog", "monkeypatch"}


def _parameters(func: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(id, arguments)`` for each case of ``func``'s ``parametrize`` mark (one case if none)."""
    cases: list[tuple[str, dict[str, Any]]] = [("", {})]
    for mark in getattr(func, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names = mark.args[0] if not isinstance(mark.args[0], str) else [n.strip() for n in mark.args[0].split(",")]
        expanded = []
        for i, value in enumerate(mark.args[1]):
            values = value.values if hasattr(value, "values") else (value if len(names) > 1 else (value,))
            for case_id, arguments in cases:
                expanded.append((f"{case_id}{i}-", {**arguments, **dict(zip(names, values, strict=True))}))
        cases = expanded
    return [(case_id.rstrip("-"), arguments) for case_id, arguments in cases]


def _cases() -> list[Any]:
    cases = []
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[-1]
        for name, func in inspect.getmembers(module, inspect.iscoroutinefunction):
            if not name.startswith("test_"):
                continue
            for case_id, arguments in _parameters(func):
                if set(inspect.signature(func).parameters) - set(arguments) - _FIXTURES:
                    continue  # (a fixture of the e2e suite's own: not run here)
                key = f"{short}.{name}"
                if key in EXCLUDED:
                    continue  # left out, with its reason in EXCLUDED (not a skip: it cannot apply here)
                cases.append(pytest.param(module, name, arguments, id=f"{key}[{case_id}]" if case_id else key))
    return cases


async def test_every_exclusion_names_a_test_of_the_suite_and_says_why() -> None:
    tests = {f"{m.__name__.rsplit('.', 1)[-1]}.{n}" for m in MODULES for n, _ in inspect.getmembers(m)}
    for key, reason in EXCLUDED.items():
        assert key in tests, f"EXCLUDED names no test: {key}"
        assert len(reason) > 20, key


@pytest.mark.parametrize(("module", "name", "arguments"), _cases())
async def test_through_haproxy_on_3_nodes(
    module: ModuleType,
    name: str,
    arguments: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setattr(module, "running_server", cluster_server)
    func = getattr(module, name)
    fixtures = {p: request.getfixturevalue(p) for p in inspect.signature(func).parameters if p not in arguments}
    await func(**arguments, **fixtures)
