"""The dashboard in headless Chromium against a real ``vmws serve`` on the simulator."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.conftest import HTML_VM, SERVE_ARGS, UI, token
from tests.browser.server import start_server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def api_vms(ui: UI) -> dict[str, str]:
    request = urllib.request.Request(
        f"{ui.server.base_url}/api/vms", headers={"Authorization": f"Bearer {token(('read',))}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {vm["name"]: vm["status"] for vm in json.load(response)["vms"]}


def test_list_shows_every_vm_with_its_status_and_hides_the_token(ui: UI) -> None:
    ui.open()
    rows = ui.page.get_by_test_id("vm-row")
    expected = api_vms(ui)
    rows.first.wait_for()
    assert rows.count() == len(expected)
    shown = {
        rows.nth(i).get_attribute("data-vm"): rows.nth(i).locator(".badge").get_attribute("data-state")
        for i in range(rows.count())
    }
    assert shown == expected
    assert shown["db-1"] == "stopped"
    # The token moved from the address bar to session storage.
    assert "token=" not in ui.page.url
    assert ui.page.evaluate("sessionStorage.getItem('vmws.token')")


def test_chart_draws_points_from_live_metrics(ui: UI) -> None:
    ui.open_vm("chart-1")
    chart = ui.page.get_by_test_id("metrics-chart")
    ui.page.wait_for_function("() => Number(document.querySelector('[data-testid=metrics-chart]').dataset.points) >= 6")
    # Rates come from counter differences: a point has one once a sample before it is
    # known, live or from the history loaded beside the socket (web/src/rates.ts); the
    # wait covers a live sample that comes before both.
    network = chart.get_by_test_id("chart-network").locator("output").first
    ui.page.wait_for_function(
        """() => /^[\\d.]+ (B|KiB|MiB|GiB)\\/s$/.test(
            document.querySelector('[data-testid=chart-network] output').textContent)""",
        timeout=5_000,
    )
    assert re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)/s", network.inner_text())
    cpu = chart.get_by_test_id("chart-cpu").locator("output").first
    assert re.fullmatch(r"[\d.]+ %", cpu.inner_text())
    # The CPU line is drawn: its colour (#5e81ac) appears on the plot canvas.
    painted = ui.page.evaluate(
        """() => {
            const canvas = document.querySelector('[data-testid=chart-cpu] canvas');
            const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (Math.abs(data[i] - 0x5e) < 24 && Math.abs(data[i + 1] - 0x81) < 24
                    && Math.abs(data[i + 2] - 0xac) < 24 && data[i + 3] > 128) n++;
            }
            return n;
        }"""
    )
    assert painted > 10, f"only {painted} pixels of the CPU line"
    # The page's JSON heartbeats (every heartbeatInterval, 1 s here) come back echoed.
    assert re.fullmatch(r"\d+ ms", ui.page.get_by_test_id("latency").inner_text())


def history_length(ui: UI, vm: str) -> int:
    request = urllib.request.Request(
        f"{ui.server.base_url}/api/vms/{vm}/metrics?since=600", headers={"Authorization": f"Bearer {token(('read',))}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return len(json.load(response))


def test_chart_opens_pre_filled_from_the_history(ui: UI) -> None:
    # Nobody watches hist-1: only the fleet's sweep (every 0.25 s here) has sampled it.
    while history_length(ui, "hist-1") < 40:
        ui.page.wait_for_timeout(250)
    # Its monitor socket reaches no server (Playwright holds it), so no live metrics
    # arrive: every point the chart draws came from GET /api/vms/hist-1/metrics.
    ui.page.route_web_socket(re.compile(r"/ws/vms/hist-1\b"), lambda ws: None)
    ui.open("#/vm/hist-1")
    ui.page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=metrics-chart]')?.dataset.points) >= 40"
    )
    cpu = ui.page.get_by_test_id("chart-cpu").locator("output").first
    assert re.fullmatch(r"[\d.]+ %", cpu.inner_text())


def test_stop_then_start_change_the_status_badge(ui: UI) -> None:
    ui.open_vm("ctl-1")
    badge = ui.page.get_by_test_id("vm-status")
    assert badge.get_attribute("data-state") == "running"
    ui.page.get_by_test_id("action-stop").click()
    ui.page.locator("[data-testid=vm-status][data-state=stopped]").wait_for()
    outcome = ui.page.get_by_test_id("outcomes").locator("li").first
    assert "fail" not in outcome.inner_text().lower()
    ui.page.get_by_test_id("action-start").click()
    ui.page.locator("[data-testid=vm-status][data-state=running]").wait_for()
    assert api_vms(ui)["ctl-1"] == "running"
    # Each WebSocket used a single-use ticket: the token never went into a socket URL.
    assert ui.sockets and all(re.search(r"[?&]token=vmt_", url) for url in ui.sockets), ui.sockets


def test_console_logs_in_and_shows_a_commands_output(ui: UI) -> None:
    ui.open_vm("con-1")
    rows = ui.page.locator(".xterm-rows")
    prompt = "admin@con-1:~$"

    def screen() -> str:
        return rows.inner_text()

    def wait_for_text(text: str) -> None:
        ui.page.wait_for_function(
            "t => document.querySelector('.xterm-rows').innerText.includes(t)", arg=text, timeout=15_000
        )

    ui.page.get_by_test_id("terminal").click()
    # The replayed scrollback may end at a prompt from an earlier test run; Enter
    # brings a fresh prompt of whichever kind.
    ui.page.keyboard.press("Enter")
    wait_for_text("login:")
    if prompt not in screen():
        ui.page.keyboard.type("admin")
        ui.page.keyboard.press("Enter")
        wait_for_text("Password:")
        ui.page.keyboard.type("admin")
        ui.page.keyboard.press("Enter")
        wait_for_text(prompt)
    ui.page.keyboard.type("echo 'e2e' 'from the browser'")
    ui.page.keyboard.press("Enter")
    # The output line, not the echoed command line: quotes gone, words joined.
    ui.page.wait_for_function(
        """() => [...document.querySelectorAll('.xterm-rows > div')]
                 .some(r => r.textContent.trim() === 'e2e from the browser')"""
    )


def test_a_watch_token_sees_who_is_on_the_console_watch_only(ui: UI) -> None:
    ui.open_vm("ro-1", permissions=("read", "watch"))
    viewers = ui.page.get_by_test_id("console-viewers")
    viewers.wait_for()
    assert viewers.inner_text() == "On this console: browser (watching)"
    toggle = ui.page.get_by_test_id("console-watch-only")
    assert toggle.is_checked() and toggle.is_disabled()
    download = ui.page.get_by_test_id("console-download")  # recordings need `console`
    assert download.is_disabled() and download.get_attribute("title") == "Recordings need the console permission"


def test_the_console_recording_downloads_as_an_asciinema_file(ui: UI, tmp_path: Path) -> None:
    ui.open_vm("con-1")
    ui.page.get_by_test_id("console-viewers").wait_for()
    assert "browser (typing)" in ui.page.get_by_test_id("console-viewers").inner_text()
    with ui.page.expect_download() as download:
        ui.page.get_by_test_id("console-download").click()
    assert download.value.suggested_filename == "con-1.cast"
    saved = tmp_path / "con-1.cast"
    download.value.save_as(saved)
    header, *events = [json.loads(line) for line in saved.read_text().splitlines()]
    assert header["version"] == 2 and (header["width"], header["height"]) == (80, 24)
    assert events and all(event[1] == "o" for event in events)


def test_vm_named_with_html_characters_renders_as_text(ui: UI) -> None:
    ui.open()
    link = ui.page.locator(f"[data-testid=vm-row][data-vm='{HTML_VM.replace(chr(39), chr(92) + chr(39))}'] a")
    assert link.inner_text() == HTML_VM
    assert ui.page.locator("img").count() == 0
    link.click()
    ui.page.locator("[data-testid=vm-connection][data-state=open]").wait_for()
    assert ui.page.get_by_test_id("vm-name").inner_text() == HTML_VM
    # The percent-encoded name reached its VM: it reports its status.
    ui.page.locator("[data-testid=vm-status][data-state=running]").wait_for()
    assert ui.page.locator("img").count() == 0
    assert ui.page.title() == "vmws"


def test_a_read_only_token_cannot_press_the_buttons(ui: UI) -> None:
    ui.open_vm("ro-1", permissions=("read",))
    for action in ("start", "stop", "force-off", "restart", "suspend", "pause", "resume"):
        button = ui.page.get_by_test_id(f"action-{action}")
        assert button.is_disabled()
        assert button.get_attribute("title") == "This token lacks the control permission"
    assert ui.page.get_by_text("This token lacks the console permission.").is_visible()
    assert ui.page.locator(".xterm").count() == 0


def test_token_field_when_the_url_has_none(ui: UI) -> None:
    ui.open(permissions=None)
    field = ui.page.get_by_test_id("token-input")
    field.fill(token(("read",)))
    field.press("Enter")
    ui.page.get_by_test_id("vm-row").first.wait_for()
    # Kept for the tab's session: a reload needs no token again.
    ui.page.reload()
    ui.page.get_by_test_id("vm-row").first.wait_for()
    ui.page.get_by_test_id("sign-out").click()
    assert ui.page.get_by_test_id("token-input").is_visible()


def test_page_is_served_with_a_strict_content_security_policy(ui: UI) -> None:
    response = ui.page.goto(ui.server.base_url + "/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "'unsafe-eval'" not in policy
    # And the browser enforces it. Playwright's evaluate may eval (CDP allows it);
    # code in a later task, like the page's own, may not.
    ui.page.get_by_test_id("token-input").wait_for()
    refused = ui.page.evaluate(
        """async () => {
            const seen = [];
            document.addEventListener('securitypolicyviolation', e => seen.push(e.effectiveDirective));
            const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
            const image = src => new Promise((resolve, reject) => {
                const img = new Image();
                img.onload = resolve;
                img.onerror = () => reject(new TypeError('image refused'));
                img.src = src;
            });
            const attempt = f => new Promise(resolve => setTimeout(async () => {
                try { await f(); resolve('allowed'); } catch (e) { resolve(e.name); }
            }));
            const results = {
                eval: await attempt(() => eval('1 + 1')),
                innerHTML: await attempt(() => { document.body.innerHTML = '<b>x</b>'; }),
                scriptSrc: await attempt(() => { document.createElement('script').src = '/x.js'; }),
                otherHost: await attempt(() => fetch('http://127.0.0.2:9/')),
                // noVNC draws JPEG/PNG rectangles and the VM's cursor from data: URLs.
                dataImage: await attempt(() => image('data:image/png;base64,' + PNG)),
                otherImage: await attempt(() => image('http://127.0.0.2:9/x.png')),
            };
            await new Promise(r => setTimeout(r, 200));
            return { results, seen };
        }"""
    )
    assert refused["results"] == {
        "eval": "EvalError",
        "innerHTML": "TypeError",  # Trusted Types: no string reaches an HTML sink
        "scriptSrc": "TypeError",
        "otherHost": "TypeError",
        "dataImage": "allowed",
        "otherImage": "TypeError",
    }
    assert {"connect-src", "require-trusted-types-for", "img-src"} <= set(refused["seen"])
    # The refusals above are logged as errors, on purpose; nothing else may be.
    expected = ("requires 'Trusted", "Content Security Policy")
    assert all(any(e in p for e in expected) for p in ui.problems), ui.problems
    ui.problems.clear()


def test_page_reconnects_when_the_server_comes_back(ui: UI, tmp_path: Path) -> None:
    """A restart of vmws (close code 1001) costs the page one 5 s wait, not a reload."""
    first = start_server(tmp_path / "first.log", *SERVE_ARGS)
    ui.server = first
    try:
        ui.open_vm("chart-1")
        first.stop()
        connection = ui.page.get_by_test_id("vm-connection")
        ui.page.locator("[data-testid=vm-connection][data-state=reconnecting]").wait_for()
        second = start_server(tmp_path / "second.log", *SERVE_ARGS, "--port", str(first.port))
        try:
            ui.page.locator("[data-testid=vm-connection][data-state=open]").wait_for(timeout=12_000)
            assert connection.inner_text() == "live"
            ui.page.locator("[data-testid=vm-status][data-state=running]").wait_for()
        finally:
            second.stop()
    finally:
        first.stop()
    # Had a retry come while the server was down, Chromium would have logged it.
    ui.problems[:] = [
        p for p in ui.problems
        if "ERR_CONNECTION_REFUSED" not in p and not p.startswith("console.error: WebSocket connection to")
    ]  # fmt: skip


def test_fleet_table_with_ten_thousand_vms(ui: UI, tmp_path: Path) -> None:
    """The VM list on /ws/fleet at 10,000 VMs: all counted, few rendered, search and
    status filter narrow it, sorting by CPU works; time to first rows is printed."""
    scenario = tmp_path / "fleet-10k.toml"
    scenario.write_text(
        '[[vm]]\nname = "vm-{00001..10000}"\nmemory_mib = 1024\nvcpus = 1\n'
        '[[vm]]\nname = "odd-one"\nstatus = "stopped"\n',
        encoding="utf-8",
    )
    big = start_server(tmp_path / "big.log", "--scenario", str(scenario), "--fleet-interval", "1")
    ui.server = big
    try:
        began = time.monotonic()
        ui.open()
        ui.page.get_by_test_id("vm-row").first.wait_for()
        print(f"fleet table, 10,001 VMs: first rows after {time.monotonic() - began:.2f} s")
        assert ui.page.get_by_test_id("fleet-count").inner_text() == "10001 VMs"
        rendered = ui.page.get_by_test_id("vm-row").count()
        assert 10 <= rendered <= 60, rendered  # only the rows in view (and a few either side)
        # Scrolled to the bottom: the last VMs are drawn, still only a screenful of them.
        ui.page.get_by_test_id("fleet-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
        ui.page.locator("[data-testid=vm-row][data-vm=vm-10000]").wait_for()
        assert ui.page.get_by_test_id("vm-row").count() <= 60
        # Search narrows it.
        ui.page.get_by_test_id("fleet-search").fill("vm-0999")
        ui.page.locator("[data-testid=fleet-count]", has_text="10 of 10001 VMs").wait_for()
        names = [ui.page.get_by_test_id("vm-row").nth(i).get_attribute("data-vm") for i in range(10)]
        assert names == [f"vm-0999{n}" for n in range(10)]
        # The status filter narrows it too.
        ui.page.get_by_test_id("fleet-search").fill("")
        ui.page.get_by_test_id("fleet-status-filter").select_option("stopped")
        ui.page.locator("[data-testid=fleet-count]", has_text="1 of 10001 VMs").wait_for()
        assert ui.page.get_by_test_id("vm-row").first.get_attribute("data-vm") == "odd-one"
        # Sorting by CPU (highest first) puts a running VM on top, with its CPU shown.
        ui.page.get_by_test_id("fleet-status-filter").select_option("all")
        ui.page.get_by_test_id("sort-cpu").click()
        top = ui.page.get_by_test_id("vm-row").first
        assert top.get_attribute("data-vm") != "odd-one"
        assert re.fullmatch(r"[\d.]+ %", top.get_by_test_id("vm-cpu").inner_text())
    finally:
        big.stop()
