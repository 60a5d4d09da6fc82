"""Cloud images offline: manifest, seed, overlays (downloads: test_cloud_download.py)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from images.cloud import MANIFEST, make_overlay, make_seed, seed_files
from images.errors import ImageError


def test_manifest_names_dated_releases_and_their_checksum_files() -> None:
    assert {"ubuntu-22.04", "ubuntu-24.04", "debian-12"} <= set(MANIFEST)
    for image in MANIFEST.values():
        assert image.url.startswith("https://")
        assert "/release-2" in image.release_url or "/bookworm/2" in image.release_url, "a dated release, not 'current'"
        assert image.sums in ("SHA256SUMS", "SHA512SUMS")
    for name in ("ubuntu-22.04", "ubuntu-24.04"):
        image = MANIFEST[name]
        assert image.signature == "SHA256SUMS.gpg"
        assert image.keyring == Path("/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg")
        assert image.keyring_package == "ubuntu-keyring"
    assert MANIFEST["debian-12"].algorithm == "sha512"


def test_seed_is_a_cidata_iso_with_hostname_and_hashed_password(tmp_path: Path) -> None:
    pycdlib = pytest.importorskip("pycdlib", reason="pycdlib is installed by scripts/install-libvirt.sh")
    seed = make_seed(tmp_path / "seed.iso", hostname="nightly-1", password="pw-42")
    iso = pycdlib.PyCdlib()
    iso.open(str(seed))
    try:
        assert iso.pvd.volume_identifier.strip() == b"cidata"
        files = {}
        for name in ("meta-data", "user-data"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/" + name)
            files[name] = out.getvalue()
    finally:
        iso.close()
    assert files == seed_files(hostname="nightly-1", password="pw-42")
    meta = json.loads(files["meta-data"])
    assert meta["local-hostname"] == "nightly-1"
    assert files["user-data"].startswith(b"#cloud-config\n")
    user = json.loads(files["user-data"].split(b"\n", 1)[1])["users"][0]
    assert user["name"] == "admin" and user["hashed_passwd"].startswith("$6$")
    assert b"pw-42" not in files["user-data"]


def test_overlay_is_backed_by_the_base(tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img missing; to enable: sudo bash scripts/install-libvirt.sh")
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    overlay = make_overlay(base, tmp_path / "disk.qcow2", size_gib=1)
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(overlay)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert info["backing-filename"] == str(base)
    assert info["virtual-size"] == 2**30


def test_overlay_failure_explains(tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img missing; to enable: sudo bash scripts/install-libvirt.sh")
    with pytest.raises(ImageError, match="qemu-img could not create"):
        make_overlay(tmp_path / "missing-base.qcow2", tmp_path / "no-dir" / "disk.qcow2")
