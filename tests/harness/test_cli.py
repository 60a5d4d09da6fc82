"""``python -m harness``: doctor, and bad inputs that end in a message, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.doctor import Check, report
from tests.harness.hosts import LIBVIRT_GROUP, require_qemu

# doctor and the bad-input runs talk to libvirtd, which a fault test restarts.
pytestmark = LIBVIRT_GROUP


def _harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_report_names_what_is_missing_and_the_fix() -> None:
    text, healthy = report(
        [
            Check("virsh", True, "/usr/bin/virsh"),
            Check("libvirtd running", False, "not running", "libvirtd -d"),
            Check("KVM", False, "hangs", "use TCG", required=False),
        ]
    )
    assert not healthy
    assert "MISSING libvirtd running" in text and "fix: libvirtd -d" in text
    assert "note    KVM" in text
    assert text.endswith("not ready: fix the MISSING lines above")
    assert report([Check("virsh", True, "x")])[1]


@pytest.mark.libvirt
def test_doctor_on_this_host() -> None:
    require_qemu()
    result = _harness("doctor", "--no-kvm-probe")
    assert result.returncode == 0, result.stdout
    assert "ready to boot guests" in result.stdout
    assert "connect qemu:///system" in result.stdout


@pytest.mark.libvirt
def test_bad_inputs_give_messages(tmp_path: Path) -> None:
    require_qemu()
    # The cloud image download goes to a local port nothing listens on, never to the network.
    mirror = f"http://127.0.0.1:{_closed_port()}"
    env = {"VMWS_CLOUD_MIRROR": mirror, "VMWS_IMAGE_CACHE": str(tmp_path)}
    for args, fragment in [
        (["up", "bad_name!"], "cannot be a hostname"),
        (["up", "vmws-cli-x", "--image", "no-such-image"], "unknown image"),
        (["up", "vmws-cli-x", "--image", "ubuntu-22.04"], f"cannot download {mirror}/releases/jammy/"),
        (["down", "vmws-no-such-vm-cli"], "no such VM"),
        (["up", "vmws-cli-x", "--uri", "qemu+unix:///system?socket=/nonexistent"], "cannot connect to libvirt"),
    ]:
        result = _harness(*args, env=env)
        assert fragment in result.stdout + result.stderr, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
