"""Real cloud images for the nightly KVM job: manifest, verified download, overlays, seeds.

- ``MANIFEST``: the entries of ``cloud.toml`` (Ubuntu 22.04 and 24.04, Debian 12),
  each one file of a dated release directory.
- ``download``: verifies the file against the checksum file the distribution publishes
  beside it (``SHA256SUMS``/``SHA512SUMS``), and that file against its signature with
  ``gpgv`` and a packaged keyring where the entry names one (Ubuntu); an optional pinned
  digest in the entry must match too. The image streams into a temporary file in the
  cache with a progress bar on stderr, hashing as it goes, and is renamed into place
  only once it matched, so a cached file is always a verified one. ``VMWS_CLOUD_MIRROR``
  points every release URL at another server (a mirror, or a test's).
- ``make_overlay``: a qcow2 overlay per VM on the shared, read-only base image.
- ``make_seed``: a cloud-init NoCloud seed (ISO 9660, volume ``cidata``) setting the
  hostname and the ``admin`` login.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tomllib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from images.cache import cache_root, ensure_free_space
from images.errors import DownloadError, ImageError
from images.fetch import check_url, fetch_bytes, stream_to_file
from images.passwords import sha512_crypt
from images.release import ALGORITHMS, algorithm_of, expected_digest, verify_signature

__all__ = [
    "CloudImage",
    "MANIFEST",
    "MIRROR_ENV",
    "load_manifest",
    "download",
    "make_overlay",
    "make_seed",
    "seed_files",
    "prepare_cloud_guest",
]

MANIFEST_FILE = Path(__file__).with_name("cloud.toml")
MIRROR_ENV = "VMWS_CLOUD_MIRROR"
_SUMS_LIMIT = 1 << 20  # a release's checksum file lists a few dozen files
_SIGNATURE_LIMIT = 64 << 10


@dataclass(frozen=True, slots=True)
class CloudImage:
    name: str
    title: str
    release_url: str  # the dated release directory, no trailing slash
    file: str
    sums: str  # "SHA256SUMS" or "SHA512SUMS", beside the file
    signature: str | None  # detached signature of ``sums``, when the distribution signs it
    keyring: Path | None  # the packaged keyring that verifies ``signature``
    keyring_package: str | None
    pin_algorithm: str | None  # an optional pinned digest, checked as well
    pin: str
    format: str
    size_mib: int
    min_memory_mib: int

    @property
    def url(self) -> str:
        return f"{self.release_url}/{self.file}"

    @property
    def algorithm(self) -> str:
        return algorithm_of(self.sums)

    @property
    def cache_stem(self) -> str:
        """The cache name: a dated release file never changes, so its URL (and pin) is its key."""
        key = hashlib.sha256(f"{self.url}\n{self.pin}".encode()).hexdigest()[:16]
        return f"{self.name}-{key}"


def _field(entry: dict[str, Any], key: str, field: str, path: Path, default: Any = None) -> Any:
    value = entry.get(field, default)
    if value is None:
        raise ImageError(f"{path}: entry [{key}] has no `{field}`")
    return value


def _parse_entry(key: str, entry: dict[str, Any], path: Path) -> CloudImage:
    release_url = str(_field(entry, key, "url", path)).rstrip("/")
    check_url(release_url)
    sums = str(_field(entry, key, "sums", path))
    algorithm_of(sums)
    signature = entry.get("signature") or None
    keyring = entry.get("keyring") or None
    if signature and not keyring:
        raise ImageError(f"{path}: entry [{key}] names a `signature` but no `keyring` to verify it with")
    pins = [(name, str(entry[name]).strip().lower()) for name in ALGORITHMS if str(entry.get(name, "")).strip()]
    if len(pins) > 1:
        raise ImageError(f"{path}: entry [{key}] pins both sha256 and sha512; keep one")
    pin_algorithm, pin = pins[0] if pins else (None, "")
    if pin_algorithm and (len(pin) != ALGORITHMS[pin_algorithm] or not all(c in "0123456789abcdef" for c in pin)):
        raise ImageError(f"{path}: entry [{key}] has a malformed {pin_algorithm} pin")
    return CloudImage(
        name=key,
        title=str(_field(entry, key, "title", path)),
        release_url=release_url,
        file=str(_field(entry, key, "file", path)),
        sums=sums,
        signature=str(signature) if signature else None,
        keyring=Path(keyring) if keyring else None,
        keyring_package=entry.get("keyring_package") or None,
        pin_algorithm=pin_algorithm,
        pin=pin,
        format=str(entry.get("format", "qcow2")),
        size_mib=int(entry.get("size_mib", 1024)),
        min_memory_mib=int(entry.get("min_memory_mib", 1024)),
    )


def load_manifest(path: Path = MANIFEST_FILE) -> dict[str, CloudImage]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImageError(f"cannot read the cloud image manifest {path}: {exc}") from None
    return {key: _parse_entry(key, entry, path) for key, entry in data.items()}


MANIFEST = load_manifest()


def _mirrored(url: str) -> str:
    """``url`` on the server ``$VMWS_CLOUD_MIRROR`` names (its path appended), if set."""
    mirror = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if not mirror:
        return url
    check_url(mirror)
    return mirror + urllib.parse.urlsplit(url).path


def _fetch_verified_sums(image: CloudImage) -> str:
    """The digest of ``image.file`` per the release's checksum file, signature checked."""
    if image.signature and image.keyring and not image.keyring.is_file():
        package = (
            f"apt-get install {image.keyring_package} (or run scripts/install-libvirt.sh)"
            if image.keyring_package
            else "install the package that ships it"
        )
        raise ImageError(f"{image.name} is verified with the keyring {image.keyring}, which is missing: {package}")
    sums_url = _mirrored(f"{image.release_url}/{image.sums}")
    sums = fetch_bytes(sums_url, limit=_SUMS_LIMIT)
    if image.signature and image.keyring:
        signature_url = _mirrored(f"{image.release_url}/{image.signature}")
        try:
            signature = fetch_bytes(signature_url, limit=_SIGNATURE_LIMIT)
        except DownloadError as exc:
            if exc.status != 404:
                raise
            raise ImageError(
                f"{signature_url} does not exist, but {image.name} expects {image.sums} to be "
                f"signed; refusing an unsigned checksum file"
            ) from None
        verify_signature(sums, signature, image.keyring, data_url=sums_url, signature_url=signature_url)
    return expected_digest(sums, image.file, image.algorithm, url=sums_url)


def download(image: CloudImage, *, cache: Path | None = None, progress: IO[str] | None = None) -> Path:
    """The verified local copy of ``image``, downloading it once."""
    directory = (cache or cache_root()) / "cloud"
    final = directory / f"{image.cache_stem}.{image.format}"
    if final.is_file():
        return final  # only ever renamed into place after verification
    listed = _fetch_verified_sums(image)
    checks = [(image.algorithm, listed, f"{image.sums} lists")]
    if image.pin_algorithm:
        checks.append((image.pin_algorithm, image.pin, "images/cloud.toml pins"))
        if image.pin_algorithm == image.algorithm and image.pin != listed:
            raise ImageError(
                f"the {image.pin_algorithm} pinned for {image.name} in images/cloud.toml is not the one "
                f"{image.sums} lists for {image.file} ({listed}); refusing the download"
            )
    ensure_free_space(directory, image.size_mib * 2**20 * 2, f"the {image.title}")
    directory.mkdir(parents=True, exist_ok=True)
    url = _mirrored(image.url)
    partial, actual = stream_to_file(
        url,
        directory,
        algorithms=tuple({name for name, _, _ in checks}),
        limit=image.size_mib * 2**20 * 2,
        label=image.name,
        progress=progress,
    )
    failed = [
        f"{source} {name} {want} but the download has {actual[name]}"
        for name, want, source in checks
        if actual[name] != want
    ]
    if failed:
        partial.unlink(missing_ok=True)
        raise ImageError(
            f"checksum mismatch for {url}: {'; '.join(failed)}. The file was deleted: retry, and "
            f"if it fails again the mirror or the release changed"
        )
    os.replace(partial, final)
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
        "users": [
            {
                "name": user,
                "lock_passwd": False,
                "hashed_passwd": sha512_crypt(password, purpose=f"cloud-{hostname}"),
                "shell": "/bin/bash",
                "groups": ["sudo"],
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
            }
        ],
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


def prepare_cloud_guest(
    name: str, image_name: str, directory: Path, *, accel: Any, memory_mib: int, password: str
) -> Any:
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
        name=name,
        accel=accel,
        directory=directory,
        image=image.cache_stem,
        memory_mib=max(memory_mib, image.min_memory_mib),
        vcpus=2,
        disks=(Disk(overlay, "qcow2"), Disk(seed, "raw", cdrom=True)),
    )
