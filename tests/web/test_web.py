"""vmws/web.py: the UI routes, their cache headers and Content-Security-Policy."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import tornado.web
from tornado.testing import AsyncHTTPTestCase

from vmws.app import Server
from vmws.auth import mint_token
from vmws.backends.simulator import SimulatorBackend
from vmws.config import Config
from vmws.web import ASSET_PREFIX, CONTENT_SECURITY_POLICY, STATIC_DIR, ui_routes

INDEX = b'<!doctype html><script type="module" src="/ui/assets/app-1a2b3c.js"></script>'


def directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


class UIRoutesTest(AsyncHTTPTestCase):
    """The handlers over a small build of our own, in a temporary folder."""

    def get_app(self) -> tornado.web.Application:
        self.root = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="vmws-web-")))
        (self.root / "assets").mkdir()
        (self.root / "index.html").write_bytes(INDEX)
        (self.root / "assets" / "app-1a2b3c.js").write_text("export const x = 1;\n")
        (self.root / "assets" / "app-1a2b3c.css").write_text("body{}\n")
        (self.root / "secret.txt").write_text("outside the assets folder\n")
        return tornado.web.Application(ui_routes(self.root))

    def test_index_is_served_at_root_and_revalidated_every_time(self) -> None:
        response = self.fetch("/")
        assert response.code == 200
        assert response.body == INDEX
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        etag = response.headers["Etag"]
        again = self.fetch("/", headers={"If-None-Match": etag})
        assert again.code == 304

    def test_head_gives_the_headers_without_the_page(self) -> None:
        response = self.fetch("/", method="HEAD")
        assert response.code == 200
        assert response.body == b""
        assert response.headers["Cache-Control"] == "no-cache"

    def test_index_changes_etag_when_the_build_changes(self) -> None:
        first = self.fetch("/").headers["Etag"]
        (self.root / "index.html").write_bytes(INDEX.replace(b"1a2b3c", b"4d5e6f"))
        assert self.fetch("/").headers["Etag"] != first

    def test_hashed_assets_are_immutable_with_correct_types(self) -> None:
        js = self.fetch(ASSET_PREFIX + "app-1a2b3c.js")
        assert js.code == 200
        assert js.body == b"export const x = 1;\n"
        assert js.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert js.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert "Expires" not in js.headers
        css = self.fetch(ASSET_PREFIX + "app-1a2b3c.css")
        assert css.headers["Content-Type"] == "text/css; charset=utf-8"

    def test_every_ui_response_carries_the_security_headers(self) -> None:
        for path in ("/", ASSET_PREFIX + "app-1a2b3c.js"):
            headers = self.fetch(path).headers
            assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
            assert headers["X-Frame-Options"] == "DENY"

    def test_unknown_and_escaping_asset_paths_are_refused(self) -> None:
        assert self.fetch(ASSET_PREFIX + "nope.js").code == 404
        for path in (ASSET_PREFIX + "../secret.txt", ASSET_PREFIX + "%2e%2e/secret.txt", ASSET_PREFIX):
            response = self.fetch(path)
            assert response.code in (403, 404), path
            assert b"outside the assets folder" not in response.body

    def test_other_paths_are_not_the_ui(self) -> None:
        assert self.fetch("/index.html").code == 404
        assert self.fetch("/ui/").code == 404

    def test_missing_build_says_how_to_build(self) -> None:
        (self.root / "index.html").unlink()
        response = self.fetch("/")
        assert response.code == 503
        assert b"npm ci && npm run build" in response.body
        assert response.headers["Cache-Control"] == "no-store"


def test_policy_forbids_inline_script_eval_framing_and_foreign_hosts() -> None:
    d = directives(CONTENT_SECURITY_POLICY)
    assert d["default-src"] == ["'none'"]
    assert d["script-src"] == ["'self'"]
    assert d["connect-src"] == ["'self'"]
    assert d["frame-ancestors"] == ["'none'"]
    assert d["base-uri"] == ["'none'"]
    assert d["object-src" if "object-src" in d else "default-src"] == ["'none'"]
    assert d["require-trusted-types-for"] == ["'script'"]
    # data: images only (noVNC's JPEG/PNG rectangles and the VM's cursor: docs/web.md).
    assert d["img-src"] == ["'self'", "data:"]
    for name, sources in d.items():
        assert "'unsafe-eval'" not in sources
        assert "*" not in sources and "http:" not in sources and "blob:" not in sources
        assert "data:" not in sources or name == "img-src", name


def test_the_shipped_build_references_only_assets_that_exist() -> None:
    """vmws/static as committed: what `pip install` users get."""
    html = (STATIC_DIR / "index.html").read_text("utf-8")
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, "index.html references no assets"
    for ref in refs:
        assert ref.startswith(ASSET_PREFIX), ref
        assert (STATIC_DIR / "assets" / ref.removeprefix(ASSET_PREFIX)).is_file(), ref
    # No inline script: every <script> has a src (the policy would block it anyway).
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    # One entry script; the chunks it shares with the lazily loaded ones (the VM page,
    # the Screen tab) come as <link rel="modulepreload">, checked to exist above.
    assert len(re.findall(r"<script\b", html)) == 1
    preloads = re.findall(r'<link rel="modulepreload"[^>]*href="([^"]+)"', html)
    assert {r for r in refs if r.endswith(".js")} == {*re.findall(r'<script\b[^>]*src="([^"]+)"', html), *preloads}
    # Vite names assets after their content: the hash is what makes `immutable` safe.
    for ref in refs:
        assert re.search(r"-[A-Za-z0-9_-]{8}\.(js|css|svg)$", ref), ref


class MountedInAppTest(AsyncHTTPTestCase):
    """ui_routes() inside the real application: the API still answers its own paths."""

    SECRET = "web-test-secret-that-is-at-least-32-bytes"

    def get_app(self) -> tornado.web.Application:
        self.backend = SimulatorBackend()
        self.io_loop.run_sync(self.backend.start)
        # Server builds the app as `vmws serve` does; it listens only when started.
        return Server(Config(port=0, jwt_secret=self.SECRET), self.backend).app

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.backend.close)
        super().tearDown()

    def test_root_is_the_dashboard(self) -> None:
        response = self.fetch("/")
        assert response.code == 200
        assert b'<div id="root">' in response.body
        assert "Content-Security-Policy" in response.headers

    def test_api_and_health_routes_are_not_shadowed(self) -> None:
        assert self.fetch("/healthz").code == 200
        assert self.fetch("/api/vms").code == 401
        token = mint_token(self.SECRET, sub="t", permissions=["read"], now=time.time(), ttl=60)
        listed = self.fetch("/api/vms", headers={"Authorization": f"Bearer {token}"})
        assert listed.code == 200
        assert b'"my-vm"' in listed.body
