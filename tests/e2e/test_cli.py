"""The ``vmws`` command as a user runs it: serve, token, console (through a pty)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from websockets.asyncio.client import connect

from tests.e2e.client import SECRET, Client

VMWS = [sys.executable, "-m", "vmws"]


class Served:
    def __init__(self, proc: subprocess.Popen[str], banner: str) -> None:
        self.proc = proc
        self.banner = banner
        self.port = int(re.search(r"http://127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe:
                pipe.close()
        return code


def serve(*args: str, secret: str | None = None) -> Served:
    """``vmws serve``; ``secret`` goes through VMWS_JWT_SECRET (never argv), else one is generated."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMWS_")}
    if secret is not None:
        env["VMWS_JWT_SECRET"] = secret
    proc = subprocess.Popen(
        [*VMWS, "serve", "--port", "0", "--speed", "20", *args],
        # Logs are dropped, so a chatty server never blocks on a full pipe.
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if (secret is not None and "serving" in line) or "/console?token=" in line:
            break
    return Served(proc, "".join(lines))


@pytest.fixture
def server() -> Iterator[Served]:
    served = serve()
    yield served
    served.stop()


def _secret_file(banner: str) -> Path:
    match = re.search(r'export VMWS_JWT_SECRET="\$\(cat (\S+)\)"', banner)
    assert match, banner
    return Path(match.group(1))


def test_serve_prints_a_working_token_and_urls_and_shuts_down_with_1001(server: Served) -> None:
    secret_file = _secret_file(server.banner)
    urls = re.findall(r"ws://\S+", server.banner)
    assert any(u.split("?")[0].endswith("/ws/vms/batch-1") or "/ws/vms/" in u for u in urls)
    monitor = next(u for u in urls if "/console" not in u)

    async def watch_then_shutdown() -> tuple[int | None, str]:
        async with connect(monitor) as ws:
            c = Client(ws)
            assert (await c.recv())["type"] == "connection"
            await c.recv("status")
            server.proc.send_signal(signal.SIGTERM)
            code, reason = await c.closed()
            return code, reason or ""

    code, reason = asyncio.run(watch_then_shutdown())
    assert code == 1001 and "shutting down" in reason
    assert server.stop() == 0
    assert not secret_file.exists()  # the secret was this run's only


def test_a_generated_secret_is_written_to_a_private_file_not_printed(server: Served) -> None:
    secret_file = _secret_file(server.banner)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 64 and secret not in server.banner
    # The secret in the file is the one the server signs with: `vmws token` with it works.
    tok = subprocess.run(
        [*VMWS, "token", "--sub", "dave", "--perm", "read"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "VMWS_JWT_SECRET": secret},
    ).stdout.strip()

    async def first() -> dict:  # type: ignore[type-arg]
        async with connect(f"{server.url}/ws/vms/my-vm?token={tok}") as ws:
            return await Client(ws).recv()

    assert asyncio.run(first())["data"]["user"] == "dave"


def test_token_command_mints_tokens_the_server_accepts() -> None:
    served = serve(secret=SECRET)
    try:
        assert "VMWS_JWT_SECRET" not in served.banner and SECRET not in served.banner
        tok = subprocess.run(
            [*VMWS, "token", "--sub", "carol", "--perm", "read", "--vm", "web-*", "--ttl", "5m"],
            env={**os.environ, "VMWS_JWT_SECRET": SECRET},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

        async def first_messages() -> tuple[dict, dict]:  # type: ignore[type-arg]
            async with connect(f"{served.url}/ws/vms/web-1?token={tok}") as ws:
                first = await Client(ws).recv()
            async with connect(f"{served.url}/ws/vms/my-vm?token={tok}") as ws:
                refused = await Client(ws).recv()
            return first, refused

        first, refused = asyncio.run(first_messages())
        assert first["data"]["user"] == "carol" and first["data"]["permissions"] == ["read"]
        assert refused["data"]["code"] == "AUTH_ERROR"
    finally:
        served.stop()


def test_bad_flags_give_a_message_not_a_traceback() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VMWS_")}
    for args, fragment, env in [
        # "short" is refused, so no secret is on this command line.
        (["serve", "--jwt-secret", "short"], "at least 32 bytes", clean),
        (["serve", "--scenario", "/nonexistent.toml"], "nonexistent.toml", clean),
        (["serve", "--metrics-interval", "0"], "metrics-interval must be positive", clean),
        (["serve", "--fleet-interval", "-1"], "fleet-interval must be positive", clean),
        (["serve", "--jwt-algorithm", "RS256", "--jwt-public-key", "/dev/null"], "--jwt-audience", clean),
        (["token", "--sub", "x"], "no secret", clean),
        (["token", "--sub", "x", "--perm", "root"], "unknown permission", {**clean, "VMWS_JWT_SECRET": SECRET}),
        (["console", "my-vm"], "no token", clean),
    ]:
        result = subprocess.run([*VMWS, *args], capture_output=True, text=True, timeout=30, env=env)
        assert result.returncode != 0, args
        assert fragment in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr


def _token_env(server: Served) -> dict[str, str]:
    tok = re.search(r"^\s+(eyJ\S+)$", server.banner, re.M).group(1)  # type: ignore[union-attr]
    return {**os.environ, "VMWS_TOKEN": tok}


def test_console_client_logs_in_through_a_pty_and_leaves_with_escape(server: Served) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "vmws", "console", "web-3", "--url", server.url],
        env=_token_env(server),
        encoding="utf-8",
        timeout=20,
    )
    child.expect(r"escape character is \^\]")
    child.send("\r")
    child.expect("web-3 login: ")
    child.send("admin\r")
    child.expect("Password: ")
    child.send("admin\r")
    child.expect(r"admin@web-3:~\$ ")
    child.send("uname -a\r")
    child.expect(r"Linux web-3 ")
    child.expect(r"\$ ")
    child.sendcontrol("]")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_console_client_with_piped_stdin(server: Served) -> None:
    result = subprocess.run(
        [*VMWS, "console", "web-4", "--url", server.url, "--linger", "1"],
        input="\nadmin\nadmin\nwhoami\n",
        capture_output=True,
        text=True,
        timeout=30,
        env=_token_env(server),
    )
    assert result.returncode == 0, result.stderr
    assert "web-4 login:" in result.stdout and "admin@web-4:~$" in result.stdout


def test_console_client_reports_refusals(server: Served) -> None:
    result = subprocess.run(
        [*VMWS, "console", "db-1", "--url", server.url],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        env=_token_env(server),
    )
    assert result.returncode == 1 and "VM_NOT_RUNNING" in result.stderr
