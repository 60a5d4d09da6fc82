"""Cloud image downloads verified against a fake release served on 127.0.0.1.

The manifest entries point at the real distribution host (as images/cloud.toml does);
``VMWS_CLOUD_MIRROR`` sends every request to the local server instead, and the
signature is made with a throwaway key whose exported keyring the entry names.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from images.cloud import MIRROR_ENV, CloudImage, download, load_manifest
from images.errors import ImageError
from tests.images.fake_release import ReleaseServer, Signer

RELEASE = "/releases/fake/release-20250101"
FILE = "fake-server-cloudimg-amd64.img"
IMAGE = b"QFI\xfb fake qcow2 " * 20_000  # ~300 KiB: several chunks and progress lines
OTHER = b"another image of the release"


@pytest.fixture(scope="module")
def signer() -> Iterator[Signer]:
    keys = Signer()
    yield keys
    keys.close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReleaseServer]:
    served = ReleaseServer()
    monkeypatch.setenv(MIRROR_ENV, served.base)
    yield served
    served.close()


def sums_for(files: dict[str, bytes], algorithm: str = "sha256") -> bytes:
    # Ubuntu writes "<digest> *<name>" (binary mode), Debian "<digest>  <name>": list both styles.
    lines = [
        f"{hashlib.new(algorithm, data).hexdigest()} {'*' if i % 2 else ' '}{name}\n"
        for i, (name, data) in enumerate(sorted(files.items()))
    ]
    return "".join(lines).encode()


def publish(
    server: ReleaseServer,
    signer: Signer,
    *,
    image: bytes = IMAGE,
    listed: bytes = IMAGE,
    sums: bytes | None = None,
    signature: bytes | None = None,
) -> None:
    """Serve the release: ``image`` as the file, a SHA256SUMS listing ``listed`` for it, signed."""
    if sums is None:
        sums = sums_for({FILE: listed, "fake-minimal-cloudimg-amd64.img": OTHER})
    server.files[f"{RELEASE}/{FILE}"] = image
    server.files[f"{RELEASE}/SHA256SUMS"] = sums
    server.files[f"{RELEASE}/SHA256SUMS.gpg"] = signer.sign(sums) if signature is None else signature


def manifest(tmp_path: Path, signer: Signer, **extra: str) -> CloudImage:
    """The entry as images/cloud.toml would have it, loaded through ``load_manifest``."""
    fields = {
        "title": "Fake 24.04 server cloud image",
        "url": f"https://cloud-images.example.invalid{RELEASE}",
        "file": FILE,
        "sums": "SHA256SUMS",
        "signature": "SHA256SUMS.gpg",
        "keyring": str(signer.keyring),
        "keyring_package": "fake-keyring",
        **extra,
    }
    lines = ['["fake-24.04"]', "size_mib = 1", *(f'{key} = "{value}"' for key, value in fields.items())]
    path = tmp_path / "cloud.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_manifest(path)["fake-24.04"]


def cache_files(cache: Path) -> list[str]:
    directory = cache / "cloud"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_good_release_is_accepted_and_cached(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer)
    image = manifest(tmp_path, signer)
    progress = io.StringIO()
    path = download(image, cache=tmp_path / "cache", progress=progress)
    assert path.read_bytes() == IMAGE
    assert cache_files(tmp_path / "cache") == [path.name], "no temporary file left beside it"
    assert server.requests == [f"{RELEASE}/SHA256SUMS", f"{RELEASE}/SHA256SUMS.gpg", f"{RELEASE}/{FILE}"]
    assert "fake-24.04" in progress.getvalue() and "100%" in progress.getvalue()


def test_cached_image_is_reused_without_download(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer)
    image = manifest(tmp_path, signer)
    first = download(image, cache=tmp_path / "cache", progress=io.StringIO())
    server.requests.clear()
    server.files.clear()
    assert download(image, cache=tmp_path / "cache") == first
    assert server.requests == []


def test_tampered_image_is_refused_and_deleted(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer, image=IMAGE[:-1] + b"!")
    image = manifest(tmp_path, signer)
    with pytest.raises(ImageError, match=rf"checksum mismatch for {server.base}{RELEASE}/{FILE}: SHA256SUMS lists"):
        download(image, cache=tmp_path / "cache", progress=io.StringIO())
    assert cache_files(tmp_path / "cache") == []


def test_tampered_sums_are_refused_as_a_bad_signature(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    honest = sums_for({FILE: b"the real image"})
    forged = sums_for({FILE: IMAGE})  # what an attacker serving IMAGE needs the list to say
    publish(server, signer, sums=forged, signature=signer.sign(honest))
    image = manifest(tmp_path, signer)
    with pytest.raises(ImageError, match=rf"bad signature: {server.base}{RELEASE}/SHA256SUMS.gpg does not verify"):
        download(image, cache=tmp_path / "cache")
    assert f"{RELEASE}/{FILE}" not in server.requests, "the image is not even fetched"
    assert cache_files(tmp_path / "cache") == []


def test_signature_by_a_key_outside_the_keyring_is_refused(
    tmp_path: Path, server: ReleaseServer, signer: Signer
) -> None:
    sums = sums_for({FILE: IMAGE})
    publish(server, signer, sums=sums, signature=signer.sign(sums, signer.stranger))
    with pytest.raises(ImageError, match=r"bad signature: .*\(no key of the keyring made it\)"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache")


def test_release_signed_by_a_known_and_an_unknown_key_passes(
    tmp_path: Path, server: ReleaseServer, signer: Signer
) -> None:
    # Ubuntu signs SHA256SUMS with two keys; a keyring holding one of them is enough.
    sums = sums_for({FILE: IMAGE})
    publish(server, signer, sums=sums, signature=signer.sign(sums, signer.stranger, signer.trusted))
    assert download(manifest(tmp_path, signer), cache=tmp_path / "cache").read_bytes() == IMAGE


def test_garbage_signature_is_refused(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer, signature=b"-----BEGIN PGP SIGNATURE-----\n\nnot one\n-----END PGP SIGNATURE-----\n")
    with pytest.raises(ImageError, match="bad signature: .*not a valid signature"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache")


def test_unsigned_sums_are_refused_when_a_signature_is_expected(
    tmp_path: Path, server: ReleaseServer, signer: Signer
) -> None:
    publish(server, signer)
    del server.files[f"{RELEASE}/SHA256SUMS.gpg"]
    with pytest.raises(ImageError, match=r"SHA256SUMS.gpg does not exist, .*refusing an unsigned checksum file"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache")
    assert f"{RELEASE}/{FILE}" not in server.requests


def test_missing_entry_is_refused(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer, sums=sums_for({"fake-minimal-cloudimg-amd64.img": OTHER, f"{FILE}.manifest": b"x"}))
    with pytest.raises(ImageError, match=rf"{server.base}{RELEASE}/SHA256SUMS has no entry for {FILE}"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache")


def test_mismatching_pinned_sha256_is_refused(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer)
    image = manifest(tmp_path, signer, sha256=hashlib.sha256(b"what the pin expected").hexdigest())
    with pytest.raises(ImageError, match=r"the sha256 pinned for fake-24.04 .* is not the one SHA256SUMS lists"):
        download(image, cache=tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == []


def test_mismatching_pinned_sha512_is_refused_after_the_download(
    tmp_path: Path, server: ReleaseServer, signer: Signer
) -> None:
    publish(server, signer)
    image = manifest(tmp_path, signer, sha512=hashlib.sha512(b"what the pin expected").hexdigest())
    with pytest.raises(ImageError, match=r"checksum mismatch for .*images/cloud.toml pins sha512"):
        download(image, cache=tmp_path / "cache", progress=io.StringIO())
    assert cache_files(tmp_path / "cache") == []


def test_matching_pin_is_accepted(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer)
    image = manifest(tmp_path, signer, sha512=hashlib.sha512(IMAGE).hexdigest())
    assert download(image, cache=tmp_path / "cache", progress=io.StringIO()).read_bytes() == IMAGE


def test_unsigned_release_verifies_its_sha512sums(tmp_path: Path, server: ReleaseServer) -> None:
    # Debian: SHA512SUMS and no signature; the entry's URL is the local server itself (no mirror).
    server.files["/images/cloud/bookworm/20250101-0000/debian.qcow2"] = IMAGE
    server.files["/images/cloud/bookworm/20250101-0000/SHA512SUMS"] = sums_for({"debian.qcow2": IMAGE}, "sha512")
    path = tmp_path / "cloud.toml"
    path.write_text(
        f'[debian-12]\ntitle = "Fake Debian"\nurl = "{server.base}/images/cloud/bookworm/20250101-0000"\n'
        f'file = "debian.qcow2"\nsums = "SHA512SUMS"\nsize_mib = 1\n'
    )
    image = load_manifest(path)["debian-12"]
    server.files["/images/cloud/bookworm/20250101-0000/debian.qcow2"] = IMAGE + b"tampered"
    with pytest.raises(ImageError, match="checksum mismatch .*SHA512SUMS lists sha512"):
        download(image, cache=tmp_path / "cache", progress=io.StringIO())
    server.files["/images/cloud/bookworm/20250101-0000/debian.qcow2"] = IMAGE
    assert download(image, cache=tmp_path / "cache", progress=io.StringIO()).read_bytes() == IMAGE


def test_missing_keyring_names_the_package_before_any_request(
    tmp_path: Path, server: ReleaseServer, signer: Signer
) -> None:
    publish(server, signer)
    image = manifest(tmp_path, signer, keyring=str(tmp_path / "no-such-keyring.gpg"))
    with pytest.raises(ImageError, match=r"no-such-keyring.gpg, which is missing: apt-get install fake-keyring"):
        download(image, cache=tmp_path / "cache")
    assert server.requests == []


def test_missing_image_names_the_url_and_the_status(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer)
    del server.files[f"{RELEASE}/{FILE}"]
    with pytest.raises(ImageError, match=rf"cannot download {server.base}{RELEASE}/{FILE}: HTTP 404"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache", progress=io.StringIO())
    assert cache_files(tmp_path / "cache") == []


def test_server_reason_phrase_is_not_echoed(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    publish(server, signer)
    server.errors[f"{RELEASE}/SHA256SUMS"] = (503, "\x1b[2J\x1b[31mowned")
    with pytest.raises(ImageError) as raised:
        download(manifest(tmp_path, signer), cache=tmp_path / "cache")
    assert str(raised.value) == f"cannot download {server.base}{RELEASE}/SHA256SUMS: HTTP 503 Service Unavailable"


def test_oversized_image_is_refused(tmp_path: Path, server: ReleaseServer, signer: Signer) -> None:
    big = b"\0" * (3 << 20)  # size_mib = 1: at most 2 MiB are accepted
    publish(server, signer, image=big, listed=big)
    with pytest.raises(ImageError, match=r"is 3145728 bytes, more than the 2097152 expected"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache", progress=io.StringIO())
    assert cache_files(tmp_path / "cache") == []


def test_unreachable_mirror_says_so(tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = ReleaseServer()
    closed.close()  # nothing listens on that port any more
    monkeypatch.setenv(MIRROR_ENV, closed.base)
    with pytest.raises(ImageError, match=rf"cannot download {closed.base}{RELEASE}/SHA256SUMS: .*check the network"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache")


def test_mirror_must_be_an_http_url(tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, "file:///etc")
    with pytest.raises(ImageError, match="'file:///etc' is not an http"):
        download(manifest(tmp_path, signer), cache=tmp_path / "cache")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('sums = "MD5SUMS"', "neither SHA256SUMS nor SHA512SUMS"),
        ('sha256 = "abc"', "malformed sha256 pin"),
        ('url = "ftp://example.invalid/r"', "is not an http"),
    ],
)
def test_bad_manifest_entries_are_explained(tmp_path: Path, extra: str, message: str) -> None:
    key = extra.split(" ", 1)[0]
    fields = {"title": '"t"', "url": '"https://example.invalid/r"', "file": '"f.img"', "sums": '"SHA256SUMS"'}
    fields[key] = extra.split(" = ", 1)[1]
    path = tmp_path / "cloud.toml"
    path.write_text("[x]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items()))
    with pytest.raises(ImageError, match=message):
        load_manifest(path)
