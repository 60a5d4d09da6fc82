"""SHA-512 crypt hashes for guest logins, made with busybox's ``mkpasswd``.

(Python's ``crypt`` module is deprecated and warns; busybox-static is on every host
that builds the tiny image.) The salt is derived from the password and a purpose, so
the same inputs give the same hash and image builds stay reproducible.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from images.errors import ImageError

__all__ = ["sha512_crypt", "check_password"]


def check_password(password: str) -> None:
    if not password or any(c in password for c in ":\n"):
        raise ImageError("the login password must be non-empty and hold no ':' or newline")


def sha512_crypt(password: str, *, purpose: str, busybox: Path | None = None) -> str:
    """``$6$salt$hash`` of ``password``."""
    check_password(password)
    tool = str(busybox) if busybox else (shutil.which("busybox") or "/bin/busybox")
    salt = hashlib.sha256(f"{purpose}:{password}".encode()).hexdigest()[:16]
    try:
        out = subprocess.run(
            [tool, "mkpasswd", "-m", "sha512", password, salt], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        raise ImageError("cannot hash the login password: busybox is missing; apt-get install busybox-static") from None
    return out.stdout.strip()
