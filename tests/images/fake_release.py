"""A fake distribution release for offline tests: a local HTTP server and throwaway GPG keys.

``ReleaseServer`` serves a dict of path -> bytes on 127.0.0.1 (a free port) and records
each path requested. ``Signer`` generates keys with ``gpg --batch --quick-gen-key`` in
a temporary ``GNUPGHOME`` (no passphrase), exports the trusted one to a keyring file
for ``gpgv``, and makes detached signatures.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["ReleaseServer", "Signer"]


class _HangUpTolerantServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A download cut short on purpose (a size limit, a cancelled build) makes the
        # body's write fail here: that is the client's choice, not this server's error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ReleaseServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.errors: dict[str, tuple[int, str]] = {}  # path -> (status, reason phrase)
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path in server.errors:
                    self.send_error(*server.errors[self.path])
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._httpd = _HangUpTolerantServer(("127.0.0.1", 0), Handler)
        # A short poll so that shutdown() returns at once rather than after up to 0.5 s.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


class Signer:
    """Throwaway OpenPGP keys: ``trusted`` (exported to ``keyring``) and ``stranger`` (not)."""

    def __init__(self) -> None:
        gpg = shutil.which("gpg")
        assert gpg, "gpg is missing: apt-get install gnupg (scripts/install-libvirt.sh installs it)"
        self._gpg = gpg
        # A short path: gpg-agent's socket lives in GNUPGHOME and socket paths are limited to ~100 bytes.
        self.home = Path(tempfile.mkdtemp(prefix="vmws-gpg-", dir="/tmp"))
        self.home.chmod(0o700)
        self.trusted = self._generate("vmws test release <trusted@vmws.invalid>")
        self.stranger = self._generate("vmws stranger <stranger@vmws.invalid>")
        self.keyring = self.home / "trusted-keyring.gpg"
        self.keyring.write_bytes(self._run("--export", self.trusted))

    def _run(self, *args: str, data: bytes | None = None) -> bytes:
        result = subprocess.run(
            [self._gpg, "--batch", "--homedir", str(self.home), *args],
            input=data,
            capture_output=True,
            timeout=120,
            check=True,
        )
        return result.stdout

    def _generate(self, uid: str) -> str:
        self._run("--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
        listing = self._run("--with-colons", "--list-keys", uid).decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    def sign(self, data: bytes, *keys: str) -> bytes:
        """An armored detached signature of ``data`` by each of ``keys`` (default: the trusted key)."""
        users = [arg for key in (keys or (self.trusted,)) for arg in ("--local-user", key)]
        return self._run(*users, "--armor", "--detach-sign", data=data)

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)
