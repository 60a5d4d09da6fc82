"""Real cloud images for the nightly KVM job: manifest, verified download, overlays, seeds.

- ``MANIFEST``: the entries of ``cloud.toml`` (Ubuntu 22.04 and 24.04, Debian 12),
  each a dated release file with a pinned checksum.
- ``download``: streams into the image cache with a progress bar on stderr, hashing as
  it goes; a checksum mismatch deletes the file and raises. Cached files are named
  after their checksum, so a re-pinned entry never reuses a stale download.
- ``make_overlay``: a qcow2 overlay per VM on the shared, read-only base image.
- ``make_seed``: a cloud-init NoCloud seed (ISO 9660, volume ``cidata``) setting the
  hostname and the ``admin`` login.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from images.cache import cache_root, ensure_free_space
from images.errors import ImageError
from images.passwords import sha512_crypt

__all__ = [
    "CloudImage",
    "MANIFEST",
    "load_manifest",
    "download",
    "make_overlay",
    "make_seed",
    "seed_files",
    "prepare_cloud_guest",
]

MANIFEST_FILE = Path(__file__).with_name("cloud.toml")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CloudImage:
    name: str
    title: str
    url: str
    algorithm: str  # "sha256" or "sha512"
    checksum: str
    format: str
    size_mib: int
    min_memory_mib: int

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def load_manifest(path: Path = MANIFEST_FILE) -> dict[str, CloudImage]:
    data = tomllib.loads(path.read_text())
    images = {}
    for key, entry in data.items():
        algorithm = "sha512" if "sha512" in entry else "sha256"
        images[key] = CloudImage(
            name=key, title=entry["title"], url=entry["url"], algorithm=algorithm,
            checksum=str(entry.get(algorithm, "")).lower(), format=entry.get("format", "qcow2"),
            size_mib=int(entry.get("size_mib", 1024)), min_memory_mib=int(entry.get("min_memory_mib", 1024)),
        )
    return images


MANIFEST = load_manifest()


class _Progress:
    """A one-line progress bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, label: str, total: int | None, out: IO[str]) -> None:
        self.label, self.total, self.out = label, total, out
        self.done = 0
        self._last = -1

    def advance(self, count: int) -> None:
        self.done += count
        if self.total:
            percent = min(100, self.done * 100 // self.total)
            if percent == self._last:
                return
            self._last = percent
            bar = "#" * (percent // 4) + "." * (25 - percent // 4)
            text = f"{self.label} [{bar}] {percent:3d}% {self.done / 2**20:.0f}/{self.total / 2**20:.0f} MiB"
        else:
            text = f"{self.label} {self.done / 2**20:.0f} MiB"
        end = "\r" if self.out.isatty() else "\n"
        if end == "\n" and self.total and self._last % 10:
            return  # not a terminal: a line every 10 %
        self.out.write(text + end)
        self.out.flush()

    def finish(self) -> None:
        if self.out.isatty():
            self.out.write("\n")
            self.out.flush()


Opener = Callable[[str], Any]


def download(image: CloudImage, *, cache: Path | None = None, opener: Opener | None = None,
             progress: IO[str] | None = None) -> Path:
    """The verified local copy of ``image``, downloading it once."""
    if len(image.checksum) not in (64, 128):
        raise ImageError(
            f"{image.name} has no pinned {image.algorithm} in {MANIFEST_FILE}: copy the sum of "
            f"{image.filename} from the release's {image.algorithm.upper()}SUMS into its `{image.algorithm}` field"
        )
    directory = (cache or cache_root()) / "cloud"
    final = directory / f"{image.name}-{image.checksum[:16]}.{image.format}"
    if final.is_file():
        return final
    ensure_free_space(directory, image.size_mib * 2**20 * 2, f"the {image.title}")
    directory.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".part")
    digest = hashlib.new(image.algorithm)
    try:
        response = (opener or urllib.request.urlopen)(image.url)
    except OSError as exc:
        raise ImageError(
            f"cannot download {image.url}: {exc}; check the network or the URL in {MANIFEST_FILE}"
        ) from None
    with response:
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        bar = _Progress(image.name, int(length) if length else None, progress or sys.stderr)
        try:
            with open(partial, "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.advance(len(chunk))
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ImageError(f"download of {image.url} failed: {exc}; free disk space or retry") from None
        bar.finish()
    actual = digest.hexdigest()
    if actual != image.checksum:
        partial.unlink(missing_ok=True)
        raise ImageError(
            f"checksum mismatch for {image.name}: expected {image.algorithm} {image.checksum}, got {actual}; "
            f"the download was corrupted or {image.url} changed. The file was deleted: retry, and if it "
            f"fails again, re-check the pinned sum in {MANIFEST_FILE}"
        )
    partial.rename(final)
    return final


def make_overlay(base: Path, overlay: Path, *, size_gib: int | None = None) -> Path:
    """A qcow2 overlay at ``overlay`` backed by ``base`` (which stays untouched)."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        raise ImageError("qemu-img is missing: apt-get install qemu-utils (or run scripts/install-libvirt.sh)")
    command = [qemu_img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)]
    if size_gib is not None:
        command.append(f"{size_gib}G")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageError(f"qemu-img could not create {overlay}: {result.stderr.strip()}")
    return overlay


def seed_files(*, hostname: str, password: str, user: str = "admin") -> dict[str, bytes]:
    """The NoCloud ``meta-data`` and ``user-data`` for a guest (JSON is valid YAML)."""
    meta = {"instance-id": f"vmws-{hostname}", "local-hostname": hostname}
    config = {
        "hostname": hostname,
        "users": [{
            "name": user, "lock_passwd": False, "hashed_passwd": sha512_crypt(password, purpose=f"cloud-{hostname}"),
            "shell": "/bin/bash", "groups": ["sudo"], "sudo": "ALL=(ALL) NOPASSWD:ALL",
        }],
        "ssh_pwauth": False,
    }
    return {
        "meta-data": json.dumps(meta, indent=2).encode() + b"\n",
        "user-data": b"#cloud-config\n" + json.dumps(config, indent=2).encode() + b"\n",
    }


def make_seed(path: Path, *, hostname: str, password: str, user: str = "admin") -> Path:
    """Write the NoCloud seed ISO for ``hostname`` to ``path``."""
    try:
        import pycdlib
    except ImportError:
        raise ImageError("pycdlib is missing: pip install pycdlib (or run scripts/install-libvirt.sh)") from None
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, data in seed_files(hostname=hostname, password=password, user=user).items():
        iso_name = "/" + name.replace("-", "").upper()[:8] + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
    try:
        iso.write(str(path))
    except OSError as exc:
        raise ImageError(f"cannot write the seed {path}: {exc}; free disk space there") from None
    finally:
        iso.close()
    return path


def prepare_cloud_guest(name: str, image_name: str, directory: Path, *, accel: Any, memory_mib: int,
                        password: str) -> Any:
    """Download (once), overlay and seed ``image_name`` for VM ``name``: its ``GuestSpec``."""
    from harness.accel import resolve_accel
    from harness.domain import Disk, GuestSpec
    from images.tiny.recipe import find_kernel

    try:
        image = MANIFEST[image_name]
    except KeyError:
        raise ImageError(f"unknown image {image_name!r}; choose one of: tiny, {', '.join(sorted(MANIFEST))}") from None
    base = download(image)
    # The KVM probe boots the host's kernel; without one, auto means TCG.
    try:
        kernel: Path | None = find_kernel().vmlinuz
    except ImageError:
        kernel = None
    accel = resolve_accel(accel, kernel)
    directory.mkdir(parents=True, exist_ok=True)
    overlay = make_overlay(base, directory / "disk.qcow2", size_gib=10)
    seed = make_seed(directory / "seed.iso", hostname=name, password=password)
    return GuestSpec(
        name=name, accel=accel, directory=directory, image=f"{image.name}-{image.checksum[:16]}",
        memory_mib=max(memory_mib, image.min_memory_mib), vcpus=2,
        disks=(Disk(overlay, "qcow2"), Disk(seed, "raw", cdrom=True)),
    )
