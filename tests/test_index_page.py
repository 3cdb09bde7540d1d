"""GET / on a real server: a short HTML page with the version, each repo's pacman.conf
stanza for the host the client used, and where the API is described; all of it escaped."""

from __future__ import annotations

import html
import http.client

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package
from vieter_lite import __version__
from vieter_lite.client import Client


def get_index(proc: ServerProcess, host: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
    conn.putrequest("GET", "/", skip_host=host is not None)
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
    resp = conn.getresponse()
    resp.body = resp.read()  # type: ignore[attr-defined]
    conn.close()
    return resp


def test_index_page_lists_repos_with_their_pacman_conf_stanza(server, tmp_path):
    admin = Client(server.url, API_KEY)
    empty = get_index(server)
    assert empty.status == 200 and b"No repositories yet" in empty.body

    for repo, arch in (("core", "x86_64"), ("extra", "aarch64"), ("core", "aarch64")):
        pkg = make_synthetic_package(tmp_path / f"{repo}-{arch}.pkg.tar.zst",
                                     {"pkgname": f"p-{repo}", "pkgver": "1.0-1", "arch": arch,
                                      "size": "1"})
        admin.publish(repo, pkg)
    resp = get_index(server, host="pi.local:8000")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/html; charset=utf-8"
    page = resp.body.decode()
    assert page.startswith("<!doctype html>")
    assert f"<h1>vieter-lite {__version__}</h1>" in page
    for repo in ("core", "extra"):
        assert f"<pre>[{repo}]\nServer = http://pi.local:8000/$repo/$arch</pre>" in page
    assert "Packages per arch: aarch64 (1), x86_64 (1)" in page
    assert "README.md" in page
    # HEAD works too, and no key is needed for either
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("HEAD", "/")
    head = conn.getresponse()
    assert head.status == 200 and head.read() == b""
    conn.close()


def test_index_page_escapes_the_host_header(server, tmp_path):
    admin = Client(server.url, API_KEY)
    pkg = make_synthetic_package(tmp_path / "p.pkg.tar.zst",
                                 {"pkgname": "p", "pkgver": "1.0-1", "arch": "x86_64",
                                  "size": "1"})
    admin.publish("core", pkg)
    hostile = 'x"><script>alert(1)</script>'
    page = get_index(server, host=hostile).body.decode()
    assert "<script>" not in page
    assert f"Server = http://{html.escape(hostile)}/$repo/$arch" in page
