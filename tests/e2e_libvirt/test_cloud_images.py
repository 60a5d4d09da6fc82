"""Nightly: each cloud image of ``images/cloud.toml`` boots under KVM and takes a login.

Collected only when ``VMWS_TEST_CLOUD_IMAGES`` names the images (``tox -e kvm`` sets
it; see conftest.py). Each image is downloaded once (verified against its release's
checksum file and signature, docs/libvirt.md), booted on a qcow2 overlay with a
cloud-init seed, and logged in to through ``vmws serve --backend libvirt`` and
``python -m harness wait-login``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.e2e_libvirt.server import URI, start_server, token
from tests.harness.hosts import LIBVIRT_GROUP, harness_cli, require_qemu, vm_prefix

pytestmark = [pytest.mark.libvirt, pytest.mark.qemu, LIBVIRT_GROUP]

IMAGES = [i.strip() for i in os.environ.get("VMWS_TEST_CLOUD_IMAGES", "").split(",") if i.strip()]
BOOT = 600.0


@pytest.mark.parametrize("image", IMAGES)
def test_cloud_image_boots_and_logs_in(image: str) -> None:
    require_qemu(URI)
    name = f"{vm_prefix('cloud')}{image.replace('.', '-')}"
    harness_cli(
        "up",
        name,
        "--image",
        image,
        "--uri",
        URI,
        "--accel",
        os.environ.get("VMWS_TEST_ACCEL", "kvm"),
        "--replace",
        "--memory",
        "1024",
        timeout=BOOT,
    )
    proc, url = start_server(name)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "wait-login",
                name,
                "--url",
                url,
                "--timeout",
                str(BOOT),
                "--run",
                "hostname",
                "--run",
                "id -un",
            ],
            env={**os.environ, "VMWS_TOKEN": token("read", "console")},
            capture_output=True,
            text=True,
            timeout=BOOT + 60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-2:] == [name, "admin"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        harness_cli("down", name, "--uri", URI)
