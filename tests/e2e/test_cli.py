"""The ``vmws`` command as a user runs it: serve, token, console (through a pty)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

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


def serve(*args: str, env: dict[str, str] | None = None) -> Served:
    proc = subprocess.Popen(
        [*VMWS, "serve", "--port", "0", "--speed", "20", *args],
        # Logs are dropped, so a chatty server never blocks on a full pipe.
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Connect:" in line or ("serving" in line and "--jwt-secret" in args):
            if "--jwt-secret" in args:
                break
        if "/console?token=" in line:
            break
    return Served(proc, "".join(lines))


@pytest.fixture
def server() -> Iterator[Served]:
    served = serve()
    yield served
    served.stop()


def test_serve_prints_a_working_token_and_urls_and_shuts_down_with_1001(server: Served) -> None:
    assert "export VMWS_JWT_SECRET=" in server.banner
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


def test_token_command_mints_tokens_the_server_accepts() -> None:
    served = serve("--jwt-secret", SECRET)
    try:
        assert "export VMWS_JWT_SECRET" not in served.banner  # the secret is not echoed back
        tok = subprocess.run(
            [*VMWS, "token", "--sub", "carol", "--perm", "read", "--vm", "web-*", "--ttl", "5m"],
            env={**os.environ, "VMWS_JWT_SECRET": SECRET}, capture_output=True, text=True, check=True,
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
    for args, fragment in [
        (["serve", "--jwt-secret", "short"], "at least 32 bytes"),
        (["serve", "--scenario", "/nonexistent.toml"], "nonexistent.toml"),
        (["serve", "--metrics-interval", "0"], "metrics-interval must be positive"),
        (["token", "--sub", "x"], "no secret"),
        (["token", "--sub", "x", "--jwt-secret", SECRET, "--perm", "root"], "unknown permission"),
        (["console", "my-vm"], "no token"),
    ]:
        result = subprocess.run([*VMWS, *args], capture_output=True, text=True, timeout=30,
                                env={k: v for k, v in os.environ.items() if not k.startswith("VMWS_")})
        assert result.returncode != 0, args
        assert fragment in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr


def _token_env(server: Served) -> dict[str, str]:
    tok = re.search(r"^\s+(eyJ\S+)$", server.banner, re.M).group(1)  # type: ignore[union-attr]
    return {**os.environ, "VMWS_TOKEN": tok}


def test_console_client_logs_in_through_a_pty_and_leaves_with_escape(server: Served) -> None:
    child = pexpect.spawn(
        sys.executable, ["-m", "vmws", "console", "web-3", "--url", server.url],
        env=_token_env(server), encoding="utf-8", timeout=20,
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
        input="\nadmin\nadmin\nwhoami\n", capture_output=True, text=True, timeout=30, env=_token_env(server),
    )
    assert result.returncode == 0, result.stderr
    assert "web-4 login:" in result.stdout and "admin@web-4:~$" in result.stdout


def test_console_client_reports_refusals(server: Served) -> None:
    result = subprocess.run(
        [*VMWS, "console", "db-1", "--url", server.url], input="", capture_output=True, text=True,
        timeout=30, env=_token_env(server),
    )
    assert result.returncode == 1 and "VM_NOT_RUNNING" in result.stderr
