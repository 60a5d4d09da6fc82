"""Redis security with real parts: an ACL user with a password, and TLS (``rediss://``)
with the server's CA given in the URL, against Debian's redis-server. A node whose
credentials or trust are wrong keeps serving its own VMs and says why, never showing
the password."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from loadtests.cluster_procs import free_port, start_redis

from .conftest import Node, token
from .test_cluster import http

pytestmark = pytest.mark.xdist_group("cluster")

PASSWORD = "acl-" + "p" * 24


def _cluster_view(node: Node) -> dict[str, Any]:
    status, body = http("GET", node.http + "/api/cluster", token("read"))
    assert status == 200
    return body


def _started(tmp_path: Path, name: str, url: str) -> Node:
    return Node(tmp_path, name, "--shard", "1/1", redis_url=url).start()


def test_an_acl_user_with_a_password_joins_and_a_wrong_password_is_refused_without_showing_it(
    tmp_path: Path,
) -> None:
    redis = start_redis(
        tmp_path / "redis",
        extra=["--user", "default", "off", "--user", "vmws", "on", f">{PASSWORD}", "~*", "&*", "+@all"],
    )
    nodes: list[Node] = []
    try:
        port = redis.port
        nodes.append(_started(tmp_path, "good", f"redis://vmws:{PASSWORD}@127.0.0.1:{port}/0"))
        view = _cluster_view(nodes[0])
        assert view["redis"]["state"] == "up" and [n["name"] for n in view["nodes"]] == ["good"]
        assert PASSWORD not in str(view) and view["redis"]["url"] == f"redis://vmws:***@127.0.0.1:{port}/0"
        nodes.append(_started(tmp_path, "bad", f"redis://vmws:wrong-{PASSWORD}@127.0.0.1:{port}/0"))
        bad = _cluster_view(nodes[1])
        assert bad["redis"]["state"] == "down" and "password" in bad["redis"]["error"].lower(), bad
        assert [n["name"] for n in _cluster_view(nodes[0])["nodes"]] == ["good"]  # it never joined
        log = nodes[1].log_path.read_text()
        assert PASSWORD not in log and "Traceback" not in log and "redis unreachable at start-up" in log
    finally:
        for node in nodes:
            node.stop()
        redis.stop()


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vmws test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "redis.pem", directory / "redis.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def test_tls_with_the_servers_ca_joins_and_an_untrusted_server_is_refused(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path / "tls")
    tls_port = free_port()
    # Plain port on loopback for the fixture's readiness check and redis-cli; the nodes
    # use only the TLS port.
    redis = start_redis(
        tmp_path / "redis",
        extra=[
            "--tls-port",
            str(tls_port),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
        ],
    )
    nodes: list[Node] = []
    try:
        nodes.append(_started(tmp_path, "trusting", f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}"))
        view = _cluster_view(nodes[0])
        assert view["redis"]["state"] == "up" and [n["name"] for n in view["nodes"]] == ["trusting"], view
        assert redis.cli("exists", "vmws:node:trusting") == "1"  # registered through TLS
        nodes.append(_started(tmp_path, "untrusting", f"rediss://127.0.0.1:{tls_port}/0"))  # system CAs only
        refused = _cluster_view(nodes[1])
        assert refused["redis"]["state"] == "down" and "certificate" in refused["redis"]["error"].lower(), refused
        log = nodes[1].log_path.read_text()
        assert "Traceback" not in log and "redis unreachable at start-up" in log
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
