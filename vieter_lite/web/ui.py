"""The dashboard's routes: its static files (package data of vieter_lite.ui, read with
importlib.resources so they are served from the zipapp too) under /ui/, / redirecting
there, and /favicon.ico. The page itself reads only /api/v2."""

from __future__ import annotations

import email.utils
import hashlib
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse, request

from vieter_lite.web.http import envelope, etag_matches, not_modified_since

if TYPE_CHECKING:
    from vieter_lite.services import Services

UI = {"api": "repo", "scope": "public"}
PACKAGE = "vieter_lite.ui"
INDEX = "index.html"
FAVICON = "favicon.svg"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                 ".png": "image/png"}
# no inline script or style, nothing from elsewhere, never framed, no referrer
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data: blob:; connect-src 'self'; "
                               "manifest-src 'self'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# revalidated on every use (a 304 while unchanged): an upgrade shows at the next load
CACHE_CONTROL = "no-cache"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    mtime: int


def load_assets(package: str = PACKAGE, now: int | None = None) -> dict[str, Asset]:
    """Every file of the package's top directory with a known type, by name. Only these
    names are ever served: a request path is looked up here, never joined to a path."""
    loaded = int(time.time()) if now is None else now
    assets = {}
    for entry in resources.files(package).iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], etag, loaded)
    return assets


def not_modified(asset: Asset) -> bool:
    """If-None-Match decides when sent (RFC 9110 13.2.2), else If-Modified-Since."""
    tags = request.environ.get("HTTP_IF_NONE_MATCH")
    if tags is not None:
        return etag_matches(tags, asset.etag)
    return not_modified_since(asset.mtime)


def respond(asset: Asset) -> HTTPResponse:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": CACHE_CONTROL,
               "Last-Modified": email.utils.formatdate(asset.mtime, usegmt=True)}
    if not_modified(asset):
        return HTTPResponse(status=304, headers=headers)
    headers["Content-Type"] = asset.content_type
    return HTTPResponse(body=b"" if request.method == "HEAD" else asset.body,
                        headers={**headers, "Content-Length": str(len(asset.body))})


def missing() -> HTTPResponse:
    resp = envelope(message="Not found.", status=404)
    for name, value in SECURITY_HEADERS.items():
        resp.set_header(name, value)
    return resp


def register(app: bottle.Bottle, services: Services) -> None:
    """Before the repository routes: /ui/<file> is never a repo's path ('ui' is reserved)."""
    assets = load_assets()

    @app.get("/", **UI)
    def root() -> HTTPResponse:
        """A browser pointed at the server gets the dashboard."""
        return HTTPResponse(status=302, headers={"Location": "/ui/",
                                                 "Cache-Control": CACHE_CONTROL})

    # '/ui/' arrives as '/ui' (trailing slashes are stripped, like Vieter's); HEAD is
    # declared, or bottle would try the repository routes' HEAD first
    @app.route("/ui", method=["GET", "HEAD"], **UI)
    def index() -> HTTPResponse:
        return respond(assets[INDEX])

    @app.route("/ui/<name:path>", method=["GET", "HEAD"], **UI)
    def asset(name: str) -> HTTPResponse:
        found = assets.get(name)
        return missing() if found is None else respond(found)

    @app.route("/favicon.ico", method=["GET", "HEAD"], **UI)
    def favicon() -> HTTPResponse:
        return respond(assets[FAVICON])
