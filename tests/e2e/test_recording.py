"""Console recordings: ``GET /api/vms/{name}/console.cast`` and ``vmws console --record``,
over a real server, played back by Debian's ``asciinema cat``. The hostile guest of
tests/e2e/test_console_filter.py prints title, clipboard and DCS strings: none may
survive into a recording."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pexpect
import pytest
import tornado.httpclient

from tests.e2e.client import client, running_server, token
from tests.e2e.test_cli import VMWS, Served, _token_env, serve
from tests.e2e.test_console_filter import ATTACK_FILES, SCENARIO
from tests.vmws.vt_reference import parse


def parse_cast(text: str) -> tuple[dict[str, Any], list[list[Any]]]:
    """Header and events of an asciinema v2 recording, checked for shape."""
    lines = text.splitlines()
    header = orjson.loads(lines[0])
    events = [orjson.loads(line) for line in lines[1:]]
    assert header["version"] == 2 and isinstance(header["timestamp"], int)
    times = [event[0] for event in events]
    assert times == sorted(times) and all(t >= 0 for t in times)
    assert all(len(e) == 3 and e[1] == "o" and isinstance(e[2], str) and e[2] for e in events)
    return header, events


def asciinema_cat(path: Path) -> str:
    """What ``asciinema cat`` writes to a terminal (it needs one: it reads /dev/tty)."""
    output, status = pexpect.run(
        f"asciinema cat {path}", withexitstatus=True, timeout=30, env={**os.environ, "TERM": "xterm-256color"}
    )
    text = output.decode("utf-8", errors="replace")
    assert status == 0, text
    return text


def assert_no_control_strings(shown: str) -> None:
    assert "after-clip" in shown and "visible-after-can" in shown
    assert parse(shown).strings == []  # no OSC, DCS, SOS, PM or APC anywhere


async def fetch(port: int, vm: str, tok: str | None) -> tornado.httpclient.HTTPResponse:
    headers = {} if tok is None else {"Authorization": f"Bearer {tok}"}
    return await tornado.httpclient.AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}/api/vms/{quote(vm, safe='')}/console.cast",
        headers=headers,
        raise_error=False,
    )


@pytest.fixture
def scenario(tmp_path: Path) -> str:
    path = tmp_path / "hostile.toml"
    path.write_text(SCENARIO)
    return str(path)


@pytest.mark.asyncio
async def test_the_held_scrollback_downloads_as_a_recording_asciinema_plays(scenario: str, tmp_path: Path) -> None:
    started = time.time()
    async with running_server(scenario=scenario) as server:
        async with client(server, "evil-1", console=True) as c:
            for line, prompt in (("\n", "login: "), ("admin\n", "Password: "), ("admin\n", "$ ")):
                await c.send("console_input", {"content": line})
                await c.read_console_until(prompt)
            await c.send("console_input", {"content": f"cat {ATTACK_FILES} /etc/modes\n"})
            await c.read_console_until("modes-on")
        reply = await fetch(server.port, "evil-1", token(["console"]))
    assert reply.code == 200
    assert reply.headers["Content-Type"] == "application/x-asciicast"
    assert reply.headers["Content-Disposition"] == "attachment; filename*=UTF-8''evil-1.cast"
    header, events = parse_cast(reply.body.decode())
    assert (header["width"], header["height"]) == (80, 24)
    assert started - 1 <= header["timestamp"] <= time.time()  # when the output arrived, not when fetched
    assert events[-1][0] <= time.time() - header["timestamp"] + 1
    recorded = "".join(event[2] for event in events)
    assert "login: " in recorded
    assert_no_control_strings(recorded)
    assert recorded.endswith("\x1b[0m") and "\x1b[?1049l" in recorded  # playback leaves the modes off
    cast = tmp_path / "evil-1.cast"
    cast.write_bytes(reply.body)
    assert_no_control_strings(asciinema_cat(cast))


@pytest.mark.asyncio
async def test_a_console_never_opened_is_an_empty_recording(tmp_path: Path) -> None:
    async with running_server() as server:
        reply = await fetch(server.port, "web-2", token())
    assert reply.code == 200
    header, events = parse_cast(reply.body.decode())
    assert events == [] and (header["width"], header["height"]) == (80, 24)
    cast = tmp_path / "empty.cast"
    cast.write_bytes(reply.body)
    asciinema_cat(cast)


@pytest.mark.asyncio
async def test_recording_refusals() -> None:
    async with running_server() as server:
        cases = [
            (None, "web-1", 401, "AUTH_ERROR"),
            (token(["read"]), "web-1", 403, "AUTH_ERROR"),
            (token(["watch"]), "web-1", 403, "AUTH_ERROR"),  # the issue: needs `console`
            (token(["console"], vms=["db-*"]), "web-1", 403, "AUTH_ERROR"),
            (token(["console"], vms=["db-*"]), "db-404", 404, "VM_NOT_FOUND"),
            (token(["console"]), "x" * 300, 404, "VM_NOT_FOUND"),
        ]
        for tok, vm, status, code in cases:
            reply = await fetch(server.port, vm, tok)
            assert reply.code == status, (tok, vm)
            assert orjson.loads(reply.body)["error"]["code"] == code
            assert "Traceback" not in reply.body.decode()


@pytest.fixture
def hostile_server(scenario: str) -> Iterator[Served]:
    served = serve("--scenario", scenario)
    yield served
    served.stop()


def test_vmws_console_record_writes_a_filtered_private_recording(hostile_server: Served, tmp_path: Path) -> None:
    cast = tmp_path / "session.cast"
    result = subprocess.run(
        [*VMWS, "console", "evil-1", "--url", hostile_server.url, "--linger", "2", "--record", str(cast)],
        input=f"\nadmin\nadmin\ncat {ATTACK_FILES} /etc/modes\n".encode(),
        capture_output=True,
        timeout=60,
        env=_token_env(hostile_server),
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(cast).st_mode) == 0o600
    header, events = parse_cast(cast.read_text())
    assert (header["width"], header["height"]) == (80, 24)  # stdout is a pipe: size unknown
    recorded = "".join(event[2] for event in events)
    assert recorded == result.stdout.decode()  # exactly what the terminal was shown
    assert_no_control_strings(recorded)
    assert_no_control_strings(asciinema_cat(cast))


def test_vmws_console_record_to_an_unwritable_path_is_a_clear_error(hostile_server: Served, tmp_path: Path) -> None:
    result = subprocess.run(
        [*VMWS, "console", "evil-1", "--url", hostile_server.url, "--record", str(tmp_path / "no" / "such.cast")],
        input=b"",
        capture_output=True,
        timeout=30,
        env=_token_env(hostile_server),
    )
    assert result.returncode == 2
    assert "cannot write the recording" in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_vmws_console_watch_sends_nothing(hostile_server: Served) -> None:
    result = subprocess.run(
        [*VMWS, "console", "evil-1", "--url", hostile_server.url, "--linger", "1", "--watch"],
        input=b"\nadmin\n",
        capture_output=True,
        timeout=30,
        env=_token_env(hostile_server),
    )
    assert result.returncode == 0, result.stderr
    assert "watch-only" in result.stderr.decode()
    assert "Password:" not in result.stdout.decode()  # the login name never reached the guest
