"""Hostile paths and headers on the repository routes get a 4xx in the envelope, never a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from conftest import API_KEY
from pkgfactory import make_synthetic_package
from vieter_lite.web.files import parse_range

HUGE = "9" * 5000
CASES = [
    ("/r/x86_64/a%00.pkg.tar.zst", {}, 404),
    ("/r/x86_64/a%00", {}, 404),
    ("/r/x86_64/" + "a" * 300 + ".pkg.tar.zst", {}, 404),
    ("/r/x86_64/" + "a" * 300, {}, 404),
    ("/r/x86_64/r.db", {"Range": f"bytes={HUGE}-"}, 416),
    ("/r/x86_64/r.db", {"Range": f"bytes=0-{HUGE}"}, 206),
    ("/r/x86_64/r.db", {"Range": f"bytes=-{HUGE}"}, 206),
]


def _get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    from conftest import ServerProcess

    work = tmp_path_factory.mktemp("bad-paths")
    proc = ServerProcess(work / "data").start()
    pkg = make_synthetic_package(work / "hello.pkg.tar.zst",
                                 {"pkgname": "hello", "pkgver": "1.0-1", "arch": "x86_64"})
    request = urllib.request.Request(f"{proc.url}/r/publish", data=pkg.read_bytes(),
                                     headers={"X-Api-Key": API_KEY}, method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    yield proc
    proc.stop()


@pytest.mark.parametrize("path, headers, status", CASES, ids=range(len(CASES)))
def test_hostile_paths_and_ranges_get_a_4xx_from_a_real_server(published, path, headers,
                                                               status):
    code, body = _get(published.url + path, headers)
    assert code == status
    if code == 404:
        assert json.loads(body)["message"] == "Not found."
    assert "Traceback" not in published.log()


@pytest.mark.parametrize("header, size, expected", [
    (f"bytes={HUGE}-", 100, False),
    (f"bytes=0-{HUGE}", 100, (0, 99)),
    (f"bytes=-{HUGE}", 100, (0, 99)),
    (f"bytes=5-{HUGE}", 100, (5, 99)),
    ("bytes=-0", 100, False),
    ("bytes=3-0", 100, None),
], ids=range(6))
def test_range_bounds_of_any_length(header, size, expected):
    assert parse_range(header, size) == expected
