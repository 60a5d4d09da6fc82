"""Cloud images offline: manifest, seed, checksum failure, unpinned entries, overlays."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from images.cloud import MANIFEST, CloudImage, download, make_overlay, make_seed, seed_files
from images.errors import ImageError


def _local_image(tmp_path: Path, payload: bytes, checksum: str) -> CloudImage:
    source = tmp_path / "served" / "disk.qcow2"
    source.parent.mkdir()
    source.write_bytes(payload)
    return CloudImage("test-img", "a test image", source.as_uri(), "sha256", checksum, "qcow2", 1, 256)


def test_manifest_pins_ubuntu_and_debian_releases() -> None:
    assert {"ubuntu-22.04", "ubuntu-24.04", "debian-12"} <= set(MANIFEST)
    for image in MANIFEST.values():
        assert image.url.startswith("https://")
        assert "/release" in image.url or "/bookworm/2" in image.url, "a dated release, not 'current'"
        assert image.algorithm in ("sha256", "sha512")


def test_download_verifies_and_caches(tmp_path: Path) -> None:
    payload = b"qcow2-ish payload " * 1000
    image = _local_image(tmp_path, payload, hashlib.sha256(payload).hexdigest())
    progress = io.StringIO()
    path = download(image, cache=tmp_path / "cache", progress=progress)
    assert path.read_bytes() == payload
    assert "test-img" in progress.getvalue()
    (tmp_path / "served" / "disk.qcow2").unlink()
    assert download(image, cache=tmp_path / "cache") == path, "a verified copy is reused"


def test_checksum_mismatch_deletes_and_explains(tmp_path: Path) -> None:
    image = _local_image(tmp_path, b"tampered", "0" * 64)
    with pytest.raises(ImageError, match="checksum mismatch.*retry"):
        download(image, cache=tmp_path / "cache", progress=io.StringIO())
    assert list((tmp_path / "cache" / "cloud").iterdir()) == []


def test_unpinned_entry_is_refused_with_instructions(tmp_path: Path) -> None:
    image = replace(_local_image(tmp_path, b"x", ""), checksum="")
    with pytest.raises(ImageError, match="no pinned sha256.*SHA256SUMS"):
        download(image, cache=tmp_path / "cache")


def test_unreachable_url_says_so(tmp_path: Path) -> None:
    image = replace(_local_image(tmp_path, b"x", "1" * 64), url=(tmp_path / "nope.img").as_uri())
    with pytest.raises(ImageError, match="cannot download"):
        download(image, cache=tmp_path / "cache")


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
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(base)
    assert info["virtual-size"] == 2**30


def test_overlay_failure_explains(tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img missing; to enable: sudo bash scripts/install-libvirt.sh")
    with pytest.raises(ImageError, match="qemu-img could not create"):
        make_overlay(tmp_path / "missing-base.qcow2", tmp_path / "no-dir" / "disk.qcow2")
