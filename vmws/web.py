"""Serving the web UI: ``/`` → the dashboard's index.html, ``/ui/assets/…`` → its built files.

The files are built from ``web/`` by Vite into ``vmws/static`` and shipped in the
package, so ``pip install`` users need no Node.js. Vite names every asset after a
hash of its content, so assets are cached forever (``immutable``) while index.html,
which names the current hashes, is revalidated on every load (``no-cache``).

Every UI response carries a strict Content-Security-Policy: scripts, styles and
connections from this origin only (``connect-src 'self'`` covers the page's own
``ws://``/``wss://``), no inline script, no eval, no plugins, no framing, and Trusted
Types enforced so no string can ever reach an HTML sink (guest console output is
terminal data, VM names are text). One concession: ``style-src`` allows inline
styles because xterm.js's DOM renderer writes its theme and cell sizes into
``<style>`` elements it creates at run time (xterm.js issue #4445) and offers no
nonce; inline *script* stays forbidden, which is what the policy is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web
from tornado.routing import URLSpec

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "ASSET_PREFIX", "ui_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Must match `base` + `build.assetsDir` in web/vite.config.ts.
ASSET_PREFIX = "/ui/assets/"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        # data: for noVNC (the Screen tab): it draws Tight JPEG and TightPNG rectangles and
        # the VM's cursor from data: URLs; an image cannot run script (docs/web.md).
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)

# Sent with every UI response, the index and the assets alike.
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The page URL may carry ?token=; no request it makes may leak it.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_ONE_YEAR = 365 * 24 * 3600


def _secure(handler: tornado.web.RequestHandler) -> None:
    for name, value in _SECURITY_HEADERS.items():
        handler.set_header(name, value)


class IndexHandler(tornado.web.RequestHandler):
    """``GET /``: the dashboard page, revalidated on every load (it names the asset hashes)."""

    def initialize(self, static_dir: Path) -> None:
        self.index = static_dir / "index.html"

    def get(self) -> None:
        # Tornado's default ETag hashes the body: a rebuilt UI gets a new one, an
        # unchanged one answers 304.
        _secure(self)
        try:
            body = self.index.read_bytes()
        except FileNotFoundError:
            self.set_status(503)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.write("vmws web UI is not built: run `npm ci && npm run build` in web/.\n")
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.write(body)

    def head(self) -> None:
        self.get()


class AssetHandler(tornado.web.StaticFileHandler):
    """``GET /ui/assets/NAME``: a content-hashed build output, cacheable forever."""

    def set_extra_headers(self, path: str) -> None:
        _secure(self)
        self.set_header("Cache-Control", f"public, max-age={_ONE_YEAR}, immutable")

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        # Cache-Control is set above; this only stops Tornado adding its own Expires.
        return 0

    @classmethod
    def get_content_type_for(cls, path: str) -> str:
        # Module scripts must be served as JavaScript, and nosniff forbids guessing;
        # some systems' mime tables lack .mjs or map .js oddly.
        if path.endswith((".js", ".mjs")):
            return "text/javascript; charset=utf-8"
        if path.endswith(".css"):
            return "text/css; charset=utf-8"
        if path.endswith(".svg"):
            return "image/svg+xml"
        return ""

    def get_content_type(self) -> str:
        assert self.absolute_path is not None
        return self.get_content_type_for(self.absolute_path) or super().get_content_type()


def ui_routes(static_dir: Path | None = None) -> list[URLSpec]:
    """Tornado URL specs for the UI; mount them after the API routes."""
    root = static_dir if static_dir is not None else STATIC_DIR
    return [
        URLSpec(r"/", IndexHandler, {"static_dir": root}, name="ui-index"),
        URLSpec(
            rf"{ASSET_PREFIX}(.*)",
            AssetHandler,
            {"path": str(root / "assets")},
            name="ui-assets",
        ),
    ]
