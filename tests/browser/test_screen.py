"""The Screen tab in Chromium: noVNC over /ws/vms/NAME/screen against the simulator's
RFB server. What the screen shows is read back from noVNC's canvas as text, cell by
cell against the simulator's own bitmap font (``simulator.screen.font.read_text``),
so the checks compare text, not pixels."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.screen.font import read_text
from tests.browser.conftest import SERVE_ARGS, UI
from tests.browser.server import start_server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

# The canvas's pixels as base64 RGBA, with its size.
_READ_CANVAS = """() => {
    const canvas = document.querySelector('[data-testid=screen] canvas');
    if (!canvas || !canvas.width || !canvas.height) return null;
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let binary = '';
    for (let i = 0; i < data.length; i += 0x8000) binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
    return { width: canvas.width, height: canvas.height, rgba: btoa(binary) };
}"""


def screen_text(ui: UI) -> list[str]:
    """What the VM's screen shows, one string per row of the 80x25 text console."""
    found = ui.page.evaluate(_READ_CANVAS)
    if found is None:
        return []
    return read_text(base64.b64decode(found["rgba"]), found["width"], found["height"], 4)


def wait_for_screen(ui: UI, ready: Callable[[list[str]], bool], what: str, timeout: float = 20.0) -> list[str]:
    """Polls the canvas until ``ready(text)`` holds; fails naming ``what`` and the last screen."""
    import time

    deadline = time.monotonic() + timeout
    text: list[str] = []
    while time.monotonic() < deadline:
        text = screen_text(ui)
        if ready(text):
            return text
        ui.page.wait_for_timeout(100)
    raise AssertionError(f"the screen never showed {what}:\n" + "\n".join(line.rstrip() for line in text))


def open_screen(ui: UI, vm: str, permissions: tuple[str, ...] | None = None) -> None:
    if permissions is None:
        ui.open_vm(vm)
    else:
        ui.open_vm(vm, permissions)
    ui.page.get_by_test_id("tab-screen").click()
    ui.page.locator("[data-testid=screen-connection][data-state=open]").wait_for()


def contains(needle: str) -> Callable[[list[str]], bool]:
    return lambda text: any(needle in line for line in text)


def log_in(ui: UI, vm: str) -> None:
    """Types admin/admin at tty1's login prompt (Enter first: a fresh prompt)."""
    ui.page.get_by_test_id("screen").locator("canvas").click()
    ui.page.keyboard.press("Enter")
    wait_for_screen(ui, contains("login:"), "a login prompt")
    ui.page.keyboard.type("admin")
    ui.page.keyboard.press("Enter")
    wait_for_screen(ui, contains("Password:"), "the password prompt")
    ui.page.keyboard.type("admin")
    ui.page.keyboard.press("Enter")
    wait_for_screen(ui, contains(f"admin@{vm}:~$"), "the shell prompt")


def test_the_screen_tab_shows_the_vm_screen(ui: UI) -> None:
    open_screen(ui, "scr-1")
    text = wait_for_screen(ui, lambda t: any(line.strip() for line in t), "anything")
    canvas = ui.page.get_by_test_id("screen").locator("canvas")
    # The whole 640x400 screen, scaled to the panel (noVNC's scaleViewport).
    size = canvas.evaluate("c => [c.width, c.height, c.getBoundingClientRect().width]")
    assert size[:2] == [640, 400], size
    assert size[2] > 640, "scaled up to the panel's width"
    # The boot log or tty1's login prompt: real text, not noise.
    assert any("login" in line or "Ubuntu" in line or "systemd" in line for line in text), text
    assert ui.page.get_by_test_id("screen-state").count() == 0  # nothing to explain: it shows
    # A single-use ticket in the socket's URL, never the token.
    screens = [url for url in ui.sockets if "/screen?" in url]
    assert screens and all(re.search(r"[?&]token=vmt_", url) for url in screens), ui.sockets


def test_typing_on_the_screen_logs_in_and_runs_a_command(ui: UI) -> None:
    open_screen(ui, "scr-1")
    log_in(ui, "scr-1")
    ui.page.keyboard.type("echo 'typed in' 'the browser'")
    ui.page.keyboard.press("Enter")
    wait_for_screen(ui, lambda t: any(line.rstrip() == "typed in the browser" for line in t), "the command's output")
    # Paste as keystrokes: the text box's lines are typed, Enter for each newline.
    ui.page.get_by_test_id("screen-paste").fill("echo Pasted\necho 'A&B|C'\n")
    ui.page.get_by_test_id("screen-paste-send").click()
    assert ui.page.get_by_test_id("screen-typed").inner_text() == "Typed 25 characters"
    text = wait_for_screen(ui, lambda t: any(line.rstrip() == "A&B|C" for line in t), "the pasted commands' output")
    assert "Pasted" in [line.rstrip() for line in text]


def test_ctrl_alt_del_reboots_the_simulated_vm(ui: UI) -> None:
    open_screen(ui, "scr-2")
    uptime = ui.page.get_by_test_id("vm-uptime")
    assert "d" in uptime.inner_text()  # up for days, as the scenario has it
    ui.page.get_by_test_id("screen-ctrl-alt-del").click()
    # The guest reboots: its uptime starts over, and tty1 shows the reboot.
    ui.page.wait_for_function(
        "() => /^up [0-9]+s$/.test(document.querySelector('[data-testid=vm-uptime]')?.textContent ?? '')"
    )
    wait_for_screen(ui, contains("login:"), "the login prompt after the reboot")


def test_watch_only_drops_input(ui: UI) -> None:
    open_screen(ui, "scr-3")
    log_in(ui, "scr-3")
    toggle = ui.page.get_by_test_id("screen-watch-only")
    toggle.check()
    ui.page.locator("[data-testid=screen-connection][data-state=open]").wait_for()
    assert ui.page.get_by_test_id("screen-ctrl-alt-del").is_disabled()
    assert ui.page.get_by_test_id("screen-paste-send").is_disabled()
    # Keys typed while watching go nowhere: noVNC (viewOnly) sends none, and the gateway
    # would drop any that came (tests/screen checks that side).
    ui.page.get_by_test_id("screen").locator("canvas").click()
    ui.page.keyboard.type("zzz")
    ui.page.keyboard.press("Enter")
    # Back to typing (a new connection): a marker command shows what the shell received.
    toggle.uncheck()
    ui.page.locator("[data-testid=screen-connection][data-state=open]").wait_for()
    ui.page.get_by_test_id("screen").locator("canvas").click()
    ui.page.keyboard.type("echo mark")
    ui.page.keyboard.press("Enter")
    text = wait_for_screen(ui, lambda t: any(line.rstrip() == "mark" for line in t), "the marker's output")
    assert not any("zzz" in line for line in text), text
    assert any(line.rstrip() == "admin@scr-3:~$ echo mark" for line in text), text


def test_a_watch_token_gets_the_screen_watch_only(ui: UI) -> None:
    open_screen(ui, "ro-1", ("read", "watch"))
    toggle = ui.page.get_by_test_id("screen-watch-only")
    assert toggle.is_checked() and toggle.is_disabled()
    wait_for_screen(ui, lambda t: any(line.strip() for line in t), "anything")
    assert ui.page.get_by_test_id("screen-ctrl-alt-del").is_disabled()


def test_a_stopped_vm_has_no_screen_and_says_so(ui: UI) -> None:
    ui.open_vm("db-1")
    ui.page.get_by_test_id("tab-screen").click()
    state = ui.page.get_by_test_id("screen-state")
    assert state.get_attribute("data-state") == "stopped"
    assert state.inner_text() == "The VM is stopped: its screen shows while it runs."
    assert ui.page.get_by_test_id("screen").locator("canvas").count() == 0


def test_the_screen_follows_the_vm_through_pause_stop_and_start(ui: UI) -> None:
    open_screen(ui, "scr-4")
    wait_for_screen(ui, contains("scr-4 login:"), "the login prompt")
    # Paused: the screen stays, frozen.
    ui.page.get_by_test_id("action-pause").click()
    ui.page.locator("[data-testid=vm-status][data-state=paused]").wait_for()
    assert ui.page.get_by_test_id("screen-connection").get_attribute("data-state") == "open"
    ui.page.get_by_test_id("action-resume").click()
    ui.page.locator("[data-testid=vm-status][data-state=running]").wait_for()
    # Stopped: the gateway closes the screen (1000) and the tab says why, without retrying.
    ui.page.get_by_test_id("action-stop").click()
    ui.page.locator("[data-testid=screen-state][data-state=stopped]").wait_for()
    assert ui.page.get_by_test_id("screen-state").inner_text() == "The VM is stopped: its screen shows while it runs."
    # Started again: a new connection, and the VM boots on screen.
    ui.page.get_by_test_id("action-start").click()
    ui.page.locator("[data-testid=screen-connection][data-state=open]").wait_for()
    wait_for_screen(ui, contains("scr-4 login:"), "the login prompt after the boot", timeout=30)


def test_the_screen_reconnects_with_a_new_ticket_when_the_server_comes_back(ui: UI, tmp_path: Path) -> None:
    first = start_server(tmp_path / "first.log", *SERVE_ARGS)
    ui.server = first
    try:
        open_screen(ui, "scr-1")
        first.stop()  # 1001 to every socket
        ui.page.locator("[data-testid=screen-state][data-state=reconnecting]").wait_for()
        assert "server shutting down" in ui.page.get_by_test_id("screen-state").inner_text().lower() or (
            "going away" in ui.page.get_by_test_id("screen-state").inner_text().lower()
        )
        second = start_server(tmp_path / "second.log", *SERVE_ARGS, "--port", str(first.port))
        try:
            ui.page.locator("[data-testid=screen-connection][data-state=open]").wait_for(timeout=30_000)
            wait_for_screen(ui, contains("scr-1 login:"), "the new server's screen")
            # Leave the page before its server goes: its sockets would retry (and Chromium
            # log each refused retry) after the filtering below.
            ui.page.goto("about:blank")
        finally:
            second.stop()
    finally:
        first.stop()
    tickets = [re.search(r"token=(vmt_[^&]+)", url) for url in ui.sockets if "/screen?" in url]
    assert len(tickets) >= 2 and all(tickets), ui.sockets
    assert len({t.group(1) for t in tickets if t}) == len(tickets), "a ticket is used once"
    # A retry while the server was down is logged by Chromium (and by noVNC), on purpose.
    ui.problems[:] = [
        p for p in ui.problems
        if "ERR_CONNECTION_REFUSED" not in p and not p.startswith("console.error: WebSocket connection to")
        and "Failed when connecting" not in p
    ]  # fmt: skip
