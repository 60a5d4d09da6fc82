"""The deployment examples in docs/cluster/ are checked statically: they parse, and every
vmws flag, name and port in them agrees with the CLI and with each other."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vmws.cli import build_parser
from vmws.cluster.shard import parse_shard

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "cluster"


def _serve_args(command: str) -> list[str]:
    argv = shlex.split(command)
    return argv[argv.index("serve") + 1 :]


def test_haproxy_config_is_valid_and_balances_round_robin_with_a_tunnel_timeout() -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed (./dev test installs it)")
    result = subprocess.run(
        [haproxy, "-c", "-f", str(EXAMPLES / "haproxy.cfg")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (EXAMPLES / "haproxy.cfg").read_text()
    assert "balance roundrobin" in text and "timeout tunnel" in text and "GET /readyz" in text


def test_systemd_unit_parses_and_its_command_line_is_accepted_by_vmws_serve() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(EXAMPLES / "vmws@.service")
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    args = _serve_args(unit["Service"]["ExecStart"].replace("%i", "2"))
    parsed = build_parser().parse_args(["serve", *args])
    assert parse_shard(parsed.shard).n == 3
    assert "VMWS_JWT_SECRET" not in unit["Service"]["ExecStart"]  # secrets from the EnvironmentFile
    port = parsed.port
    assert unit["Service"]["Environment"].endswith(f":{port}")
    assert f":{port} check" in (EXAMPLES / "haproxy.cfg").read_text()


def test_kubernetes_manifest_parses_and_names_ports_and_flags_agree() -> None:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "kubernetes.yaml").read_text()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Deployment", "vmws-redis"),
        ("Service", "vmws-redis"),
        ("StatefulSet", "vmws"),
        ("Service", "vmws"),
    } <= kinds
    stateful = next(d for d in docs if d["kind"] == "StatefulSet")
    container = stateful["spec"]["template"]["spec"]["containers"][0]
    command = container["command"][-1].replace("$(( ${HOSTNAME##*-} + 1 ))", "1").replace('"$HOSTNAME"', "vmws-0")
    parsed = build_parser().parse_args(["serve", *_serve_args(command)])
    assert parse_shard(parsed.shard).n == stateful["spec"]["replicas"]
    assert container["ports"][0]["containerPort"] == parsed.port
    assert container["readinessProbe"]["httpGet"]["port"] == parsed.port
    env = {e["name"] for e in container["env"]}
    assert {"VMWS_JWT_SECRET", "VMWS_REDIS_URL"} <= env
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "vmws")
    assert service["spec"]["ports"][0]["targetPort"] == parsed.port
    redis_service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "vmws-redis")
    assert re.search(r"redis://vmws-redis:(\d+)", (EXAMPLES / "kubernetes.yaml").read_text()).group(1) == str(
        redis_service["spec"]["ports"][0]["port"]
    )
