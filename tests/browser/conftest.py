"""Fixtures for the browser tests: one real ``vmws serve`` and one headless Chromium per
test process (xdist worker), a fresh browser context per test, and a screenshot of
every test's last screen under ``artifacts/browser/``.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright through its
``executable_path``; nothing is downloaded. Without it (or the playwright package)
these tests skip on a developer's machine, naming the script that installs both, and
fail in CI (``CI`` set), where a skip would hide a missing install step.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser.server import ROOT, SECRET, ServeProcess, start_server
from vmws.auth import mint_token

CHROMIUM = os.environ.get("VMWS_CHROMIUM", "/usr/bin/chromium")
# As root in a container: no sandbox; and no background traffic to Google's hosts,
# which this machine's closed network refuses (python.md).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
FLEET = Path(__file__).with_name("fleet.toml")
ARTIFACTS = ROOT / "artifacts" / "browser"
HTML_VM = '<img src=x onerror=alert(1)>&amp;"q"'
ALL = ("read", "control", "console")
SERVE_ARGS = (
    "--scenario", str(FLEET),
    "--metrics-interval", "0.5",
    "--heartbeat-interval", "1",
    "--fleet-interval", "0.25",  # unwatched VMs sampled into their history 4 times a second
)  # fmt: skip


def _require_browser() -> None:
    problem = None
    if shutil.which(CHROMIUM) is None:
        problem = f"no Chromium at {CHROMIUM}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed"
    if problem is None:
        return
    message = f"{problem}: run `bash scripts/install-browser.sh`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def token(permissions: tuple[str, ...] = ALL, *, sub: str = "browser", ttl: float = 900) -> str:
    return mint_token(SECRET, sub=sub, permissions=list(permissions), now=time.time(), ttl=ttl)


@pytest.fixture(scope="session")
def vmws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    _require_browser()
    server = start_server(tmp_path_factory.mktemp("vmws-serve") / "serve.log", *SERVE_ARGS)
    yield server
    server.stop()


# Module scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and asyncio tests sharing the worker would find it. The
# browser tests form one xdist group (see test_dashboard.py, `--dist loadgroup`), so
# they run back to back and the loop is gone before any other test runs here.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@dataclass
class UI:
    """One browser tab on the dashboard, and what it complained about."""

    page: Any
    server: ServeProcess
    problems: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def open(self, hash_path: str = "", permissions: tuple[str, ...] | None = ALL, *, sub: str = "browser") -> None:
        """Loads the dashboard the way the printed URL does: ``/?token=…#…``."""
        query = "" if permissions is None else f"?token={token(permissions, sub=sub)}"
        self.page.goto(f"{self.server.base_url}/{query}{hash_path}")

    def open_vm(self, name: str, permissions: tuple[str, ...] = ALL, *, sub: str = "browser") -> None:
        from urllib.parse import quote

        self.open(f"#/vm/{quote(name, safe='')}", permissions, sub=sub)
        self.page.get_by_test_id("vm-connection").and_(self.page.locator("[data-state=open]")).wait_for()


@pytest.fixture
def ui(vmws: ServeProcess, browser: Any, request: pytest.FixtureRequest) -> Iterator[UI]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    tab = UI(page, vmws)
    # Errors the page logs (a CSP violation, a Trusted Types refusal, a failed
    # request) and uncaught exceptions: each fails the test at teardown.
    page.on("console", lambda m: tab.problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.problems.append(f"uncaught: {e}"))
    page.on("websocket", lambda ws: tab.sockets.append(ws.url))
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name) + ".png")
        try:
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    assert not tab.problems, "the page reported errors:\n" + "\n".join(tab.problems)
