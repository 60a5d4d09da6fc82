"""Hostile guest output through a real ``vmws console``: in tmux (a real terminal that
executes what it is sent) and on a pipe. The guest's files carry the attacks of issue 10
item 1; ``cat`` prints them on the simulated serial console."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import VMWS, Served, _token_env, serve
from tests.vmws.vt_reference import parse

# TOML strings: \u001b is ESC, \u0007 BEL, \u009d the C1 OSC, \u0018 CAN.
SCENARIO = r"""
[personality.hostile]
base = "ubuntu-22.04"

[personality.hostile.files]
"/etc/clip" = "\u001b\u001b]0;x\u0007]52;c;aGk=\u0007 after-clip\n"
"/etc/clip-c1" = "\u001b\u009d0;x\u009c]52;c;aGk=\u0007 after-c1\n"
"/etc/clip-dcs" = "\u001b\u001bPq\u001b\\]52;c;aGk=\u0007 after-dcs\n"
"/etc/title" = "\u001b\u0000]2;TITLE\u0007 after-title\n"
"/etc/can" = "\u001b]0;x\u0018visible-after-can \u001b]2;T2\u001b[1mbold-after-esc\u001b[0m\n"
"/etc/modes" = "\u001b[?1049h\u001b[?25l\u001b[?1000h\u001b[?1006h\u001b[?2004h\u001b[?1h\u001b[1;31mmodes-on\n"

[[vm]]
name = "evil-1"
personality = "hostile"
"""
CLIPBOARD_AND_TITLE = "/etc/clip /etc/clip-c1 /etc/clip-dcs /etc/title"
ATTACK_FILES = f"{CLIPBOARD_AND_TITLE} /etc/can"


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[Served]:
    scenario = tmp_path / "hostile.toml"
    scenario.write_text(SCENARIO)
    served = serve("--scenario", str(scenario))
    yield served
    served.stop()


class Tmux:
    """A private tmux server (own socket, no user config) running one command in one pane."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.base = ["tmux", "-S", str(socket), "-f", "/dev/null"]
        self.env = env

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True, timeout=10, check=True
        ).stdout

    def fmt(self, name: str) -> str:
        return self("display-message", "-p", "-t", "t", f"#{{{name}}}").strip()

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t")

    def wait_for(self, text: str, seconds: float = 30) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on the tmux screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "t", *keys)


@pytest.fixture
def tmux(tmp_path: Path, hostile_server: Served) -> Iterator[Tmux]:
    # The token reaches `vmws console` through the tmux server's environment, not argv.
    t = Tmux(tmp_path / "tmux.sock", _token_env(hostile_server))
    console = f"{sys.executable} -m vmws console evil-1 --url {hostile_server.url}"
    t("new-session", "-d", "-s", "t", "-x", "120", "-y", "40", f"{console}; echo DETACHED-rc=$?; sleep 600")
    t("set-option", "-g", "set-clipboard", "on")  # an OSC 52 that got through would fill a buffer
    yield t
    subprocess.run([*t.base, "kill-server"], env=t.env, capture_output=True, timeout=10)


def login(t: Tmux) -> None:
    t.wait_for("escape character is ^]")
    t.keys("Enter")
    t.wait_for("evil-1 login:")
    t.keys("admin", "Enter")
    t.wait_for("Password:")
    t.keys("admin", "Enter")
    t.wait_for("admin@evil-1:~$")


def test_guest_cannot_set_the_title_or_clipboard_and_text_stays_visible(tmux: Tmux) -> None:
    title_before = tmux.fmt("pane_title")
    login(tmux)
    tmux.keys(f"cat {CLIPBOARD_AND_TITLE}", "Enter")
    tmux.wait_for("after-title")
    tmux.keys("echo cat-done", "Enter")
    tmux.wait_for("\ncat-done")  # the output line, not the echoed command
    assert tmux.fmt("pane_title") == title_before != "TITLE"
    assert tmux("list-buffers") == ""  # no OSC 52 reached the terminal's clipboard
    # What a terminal shows after the removed strings is shown: the "]52;..." text,
    # the text after CAN and the CSI after an ESC that ended a string.
    tmux.keys("cat /etc/can", "Enter")
    screen = tmux.wait_for("bold-after-esc")
    for text in (
        "]52;c;aGk= after-clip",
        "]52;c;aGk= after-c1",
        "]52;c;aGk= after-dcs",
        "after-title",
        "visible-after-can",
        "bold-after-esc",
    ):
        assert text in screen, (text, screen)
    assert "T2" not in screen and tmux.fmt("pane_title") == title_before


def test_detach_resets_the_modes_the_guest_switched_on(tmux: Tmux) -> None:
    login(tmux)
    tmux.keys("cat /etc/modes", "Enter")
    tmux.wait_for("modes-on")
    assert tmux.fmt("alternate_on") == "1" and tmux.fmt("cursor_flag") == "0"
    assert tmux.fmt("mouse_standard_flag") == "1" and tmux.fmt("mouse_sgr_flag") == "1"
    assert tmux.fmt("keypad_cursor_flag") == "1"
    tmux.keys("C-]")
    screen = tmux.wait_for("DETACHED-rc=0")
    assert tmux.fmt("alternate_on") == "0" and tmux.fmt("cursor_flag") == "1"
    assert tmux.fmt("mouse_standard_flag") == "0" and tmux.fmt("mouse_sgr_flag") == "0"
    assert tmux.fmt("keypad_cursor_flag") == "0"
    assert "admin@evil-1:~$" in screen  # back on the normal screen, which kept the session


def test_filter_applies_on_a_pipe_too(hostile_server: Served) -> None:
    result = subprocess.run(
        [*VMWS, "console", "evil-1", "--url", hostile_server.url, "--linger", "2"],
        input=f"\nadmin\nadmin\ncat {ATTACK_FILES} /etc/modes\n".encode(),
        capture_output=True,
        timeout=60,
        env=_token_env(hostile_server),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "visible-after-can" in out and "modes-on" in out
    terminal = parse(out)
    assert terminal.strings == []  # no OSC, DCS, SOS, PM or APC anywhere in what was written
    tail = out[out.rindex("modes-on") :]
    for reset in ("\x1b[?1049l", "\x1b[?25h", "\x1b[?1000l", "\x1b[?1006l", "\x1b[?2004l", "\x1b[?1l", "\x1b[0m"):
        assert reset in tail, reset
