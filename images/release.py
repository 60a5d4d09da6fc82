"""A distribution's published checksum file, and its OpenPGP signature, checked offline.

Ubuntu and Debian publish beside each dated release a ``SHA256SUMS`` / ``SHA512SUMS``
file (lines ``<hex digest> [ *]<file name>``); Ubuntu also signs it
(``SHA256SUMS.gpg``, a detached signature). ``verify_signature`` runs ``gpgv`` against
one keyring file only (no key server, no user keyring: ``GNUPGHOME`` is an empty
temporary directory), and ``expected_digest`` reads the one line for a file from the
bytes that were verified, so what is checked is what is used.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from images.errors import ImageError

__all__ = ["ALGORITHMS", "algorithm_of", "expected_digest", "verify_signature"]

ALGORITHMS = {"sha256": 64, "sha512": 128}  # name -> hex digest length
_SUMS_NAME = re.compile(r"^(SHA256|SHA512)SUMS$")
_GPGV_TIMEOUT = 60.0
# Status lines that mean the data or the key cannot be trusted, whatever else gpgv says.
_REFUSING = ("BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG")


def algorithm_of(sums_name: str) -> str:
    """``"sha256"`` for ``SHA256SUMS``, ``"sha512"`` for ``SHA512SUMS``."""
    match = _SUMS_NAME.match(sums_name)
    if match is None:
        raise ImageError(f"checksum file {sums_name!r} is neither SHA256SUMS nor SHA512SUMS")
    return match.group(1).lower()


def expected_digest(sums: bytes, filename: str, algorithm: str, *, url: str) -> str:
    """The digest ``sums`` (fetched from ``url``) lists for ``filename``, in lower-case hex."""
    length = ALGORITHMS[algorithm]
    found: set[str] = set()
    for raw in sums.splitlines():
        fields = raw.split(maxsplit=1)
        if len(fields) != 2:
            continue
        digest, name = fields
        # "<digest>  name" (text mode) or "<digest> *name" (binary mode), maybe "./name".
        name = name.strip().removeprefix(b"*").removeprefix(b"./")
        if name != filename.encode():
            continue
        text = digest.decode("ascii", "replace").lower()
        if len(text) != length or not all(c in "0123456789abcdef" for c in text):
            raise ImageError(f"{url} lists {filename} with a malformed {algorithm} digest; refusing the download")
        found.add(text)
    if not found:
        raise ImageError(
            f"{url} has no entry for {filename}: the release does not publish that file "
            f"(check `file` and `url` in images/cloud.toml)"
        )
    if len(found) > 1:
        raise ImageError(f"{url} lists {filename} with {len(found)} different digests; refusing the download")
    return found.pop()


def verify_signature(data: bytes, signature: bytes, keyring: Path, *, data_url: str, signature_url: str) -> None:
    """Raise ``ImageError`` unless ``signature`` is a good signature of ``data`` by a key in ``keyring``.

    Accepted: at least one valid signature by a key of the keyring, and no bad,
    expired or revoked one. A signature by a key not in the keyring is ignored when
    another one is valid, so a release signed by an old and a new key still passes
    with a keyring that holds either.
    """
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise ImageError("gpgv is missing: apt-get install gpgv (or run scripts/install-libvirt.sh)")
    if not keyring.is_file():
        raise ImageError(f"the keyring {keyring} is missing, so {data_url} cannot be verified")
    with tempfile.TemporaryDirectory(prefix="vmws-gpgv-") as scratch:
        home = Path(scratch, "home")
        home.mkdir(mode=0o700)
        data_file, signature_file = Path(scratch, "sums"), Path(scratch, "sums.sig")
        data_file.write_bytes(data)
        signature_file.write_bytes(signature)
        command = [gpgv, "--status-fd", "1", "--keyring", str(keyring.resolve()), str(signature_file), str(data_file)]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                timeout=_GPGV_TIMEOUT,
                check=False,
                env={**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            raise ImageError(f"gpgv did not finish verifying {signature_url} within {_GPGV_TIMEOUT:.0f} s") from None
    status = [
        line.split()[1].decode("ascii", "replace")
        for line in result.stdout.splitlines()
        if line.startswith(b"[GNUPG:] ") and len(line.split()) > 1
    ]
    refusing = sorted(set(status) & set(_REFUSING))
    if refusing:
        raise ImageError(
            f"bad signature: {signature_url} does not verify {data_url} ({', '.join(refusing)}); "
            f"the checksum file was altered or the release is not the distribution's"
        )
    if "VALIDSIG" not in status:
        reason = (
            "no key of the keyring made it"
            if "ERRSIG" in status or "NO_PUBKEY" in status
            else ("it is not a signature gpgv can read")
        )
        raise ImageError(
            f"bad signature: {signature_url} is not a valid signature of {data_url} by a key in {keyring} ({reason})"
        )
