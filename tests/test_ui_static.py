"""The dashboard's files on a real server: / redirects to /ui/, each file with its content
type, ETag, Last-Modified, Cache-Control and security headers, 304s, 404s in the repo
API's envelope for unknown names, no path (raw, dotted or percent-encoded) reaching
outside the package, and 'ui' kept from repo names. And the files themselves: no inline
script or style (the CSP forbids them), absolute asset URLs, no HTML built from data."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from conftest import API_KEY, ServerProcess
from vieter_lite.names import check_repo
from vieter_lite.web.ui import CONTENT_TYPES, SECURITY_HEADERS, load_assets

UI_DIR = Path(resources.files("vieter_lite.ui"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("ui-static") / "data").start()
    yield proc
    proc.stop()


def fetch(server: ServerProcess, path: str, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """The path sent exactly as given (no client-side normalisation of dots)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def test_the_root_redirects_to_the_dashboard(server):
    status, headers, _ = fetch(server, "/")
    assert status == 302 and headers["location"] == "/ui/"


@pytest.mark.parametrize("path,content_type", [
    ("/ui/", "text/html; charset=utf-8"), ("/ui", "text/html; charset=utf-8"),
    ("/ui/index.html", "text/html; charset=utf-8"),
    ("/ui/app.js", "text/javascript; charset=utf-8"),
    ("/ui/style.css", "text/css; charset=utf-8"), ("/ui/favicon.svg", "image/svg+xml"),
    ("/favicon.ico", "image/svg+xml")])
def test_each_file_has_its_type_caching_and_security_headers(server, path, content_type):
    status, headers, body = fetch(server, path)
    assert status == 200 and headers["content-type"] == content_type
    assert int(headers["content-length"]) == len(body) > 0
    assert re.fullmatch(r'"[0-9a-f]{32}"', headers["etag"])
    assert headers["cache-control"] == "no-cache" and headers["last-modified"].endswith("GMT")
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value
    csp = headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe" not in csp
    # revalidation: the same ETag (or a later date) is a 304 without a body
    again, headers304, body304 = fetch(server, path, headers={"If-None-Match": headers["etag"]})
    assert (again, body304) == (304, b"") and headers304["etag"] == headers["etag"]
    since = fetch(server, path, headers={"If-Modified-Since": headers["last-modified"]})
    assert since[0] == 304
    changed = fetch(server, path, headers={"If-None-Match": '"0000"',
                                            "If-Modified-Since": headers["last-modified"]})
    assert changed[0] == 200 and changed[2] == body  # If-None-Match decides when sent
    head_status, head_headers, head_body = fetch(server, path, method="HEAD")
    assert head_status == 200 and head_body == b"" and head_headers["etag"] == headers["etag"]


@pytest.mark.parametrize("path", [
    "/ui/../vieter.sqlite", "/ui/..", "/ui/../", "/ui/../../../../etc/passwd",
    "/ui/..%2f..%2f..%2fetc%2fpasswd", "/ui/%2e%2e/%2e%2e/etc/passwd", "/ui/%2e%2e%2fapp.js",
    "/ui/..%5c__init__.py", "/ui/__init__.py", "/ui/./app.js", "/ui/%2fetc%2fpasswd",
    "/ui//etc/passwd", "/ui/nope.js", "/ui/app.js%00.css", "/ui/APP.JS",
    "/ui/../web/ui.py", "/ui/../../pyproject.toml"])
def test_no_other_path_is_served_and_a_miss_is_the_repo_envelope(server, path):
    status, headers, body = fetch(server, path)
    assert status == 404, (path, status)
    assert json.loads(body) == {"message": "Not found.", "data": ""}
    assert headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]


def test_only_the_packages_own_files_are_assets():
    """What is served is a fixed table of the package directory's files, read once;
    Python files (and anything of another type) are not in it."""
    assets = load_assets()
    expected = {p.name for p in UI_DIR.iterdir()
                if p.is_file() and p.suffix in CONTENT_TYPES}
    assert set(assets) == expected and "index.html" in assets and "app.js" in assets
    assert not [name for name in assets if "/" in name or name.endswith(".py")]


def test_ui_is_a_reserved_repo_name(server):
    with pytest.raises(ValueError, match="reserved"):
        check_repo("ui")
    with pytest.raises(ValueError, match="reserved"):
        check_repo("UI")
    status, _, body = fetch(server, "/ui/publish", method="POST",
                            headers={"X-Api-Key": API_KEY, "Content-Length": "0"})
    assert status == 400 and b"reserved" in body


# -- the files themselves ------------------------------------------------------------------

def test_the_page_has_no_inline_script_or_style_and_absolute_asset_urls():
    page = (UI_DIR / "index.html").read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all(body.strip() == "" for _, body in scripts)
    assert all(re.search(r'src="/ui/[a-z]+\.js"', attrs) for attrs, _ in scripts)
    assert "<style" not in page and " style=" not in page and " on" not in page.replace(
        "<noscript>", "")
    for url in re.findall(r'(?:href|src)="([^"#]+)"', page):
        assert url.startswith("/"), url


def test_every_module_import_names_a_served_file():
    assets = load_assets()
    for name in [n for n in assets if n.endswith(".js")]:
        text = assets[name].body.decode()
        for imported in re.findall(r"from '\./([a-z]+\.js)'", text):
            assert imported in assets, (name, imported)


@pytest.mark.parametrize("name", sorted(p.name for p in UI_DIR.glob("*.js")))
def test_no_script_builds_html_from_text(name):
    """Logs, notes and diffs are untrusted: the page builds DOM nodes and sets text,
    never HTML (and evaluates no strings)."""
    text = (UI_DIR / name).read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute('style'", "javascript:"):
        assert sink not in text, (name, sink)


@pytest.mark.parametrize("ci,outcome", [("1", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path, ci, outcome):
    import browser

    monkeypatch.setattr(browser, "CHROMEDRIVER", tmp_path / "no-chromedriver")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no-chromedriver is not installed"):
        browser.require_browser()
