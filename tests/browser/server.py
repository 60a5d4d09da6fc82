"""A real ``vmws serve`` in a subprocess, on a port the OS picks, for the browser tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SECRET", "ServeProcess", "start_server"]

SECRET = "browser-tests-secret-at-least-32-bytes-long"
ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on [0-9.]+:(\d+)")


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGINT (what Ctrl-C sends), then a kill if it will not go."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(log_path: Path, *args: str, timeout: float = 30.0, secret: str = SECRET) -> ServeProcess:
    """Starts the server with ``--port 0`` and waits for the port it reports."""
    # The secret goes through the environment, never argv (visible in `ps`).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "VMWS_JWT_SECRET": secret}
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "vmws", "serve", "--host", "127.0.0.1", "--port", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_text("utf-8", "replace"))
        if match:
            return ServeProcess(process, int(match.group(1)), log_path)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=5)
    raise RuntimeError(f"vmws serve did not start:\n{log_path.read_text('utf-8', 'replace')[-3000:]}")
