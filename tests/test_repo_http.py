"""Repository routes end to end: one scenario suite run in-process (webtest) and against a
real server process, plus real-server-only checks (raw sockets, concurrency, restarts)."""

from __future__ import annotations

import email.utils
import hashlib
import io
import itertools
import json
import random
import signal
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import API_KEY, ServerProcess
from http_clients import InProcessClient, Response, ServerClient
from pkgfactory import _COMPRESSORS, make_synthetic_package

KEY = {"X-Api-Key": API_KEY}
EXTENSIONS = {"zst": ".pkg.tar.zst", "gz": ".pkg.tar.gz", "xz": ".pkg.tar.xz", "none": ".pkg.tar"}


def _stop_cleanly(proc: ServerProcess) -> None:
    assert proc.stop() == 0, proc.log()


@pytest.fixture(params=["inprocess", "server"])
def client(request):
    """The scenario suite's client: webtest in-process, or a real server process."""
    if request.param == "inprocess":
        yield InProcessClient(request.getfixturevalue("webapp"),
                              request.getfixturevalue("services"))
    else:
        proc = request.getfixturevalue("server")
        yield ServerClient(proc)
        _stop_cleanly(proc)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("shared") / "data").start()
    yield proc
    _stop_cleanly(proc)


@pytest.fixture(params=["inprocess", "server"])
def reused_client(request):
    """Like `client`, but one real server serves the whole module: for tests whose requests
    must change nothing (they publish only foo 1.0-1 and compare snapshots themselves)."""
    if request.param == "inprocess":
        yield InProcessClient(request.getfixturevalue("webapp"),
                              request.getfixturevalue("services"))
    else:
        proc = request.getfixturevalue("shared_server")
        assert proc.proc.poll() is None, proc.log()
        yield ServerClient(proc)


@pytest.fixture(params=["inprocess", "server"])
def small_client(request, tmp_path):
    """Like `client`, with a 4096-byte upload limit."""
    if request.param == "inprocess":
        services = request.getfixturevalue("services")
        services.store.max_upload_size = 4096
        yield InProcessClient(request.getfixturevalue("webapp"), services)
    else:
        proc = ServerProcess(tmp_path / "data",
                             env_extra={"VIETER_MAX_UPLOAD_SIZE": "4096"}).start()
        yield ServerClient(proc)
        _stop_cleanly(proc)


@pytest.fixture
def server_client(server):
    yield ServerClient(server)
    _stop_cleanly(server)


# -- packages ------------------------------------------------------------------------------

class PackageMaker:
    """Synthetic package bytes: make(name, version, arch, compression, **pkginfo fields)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.counter = itertools.count()
        directory.mkdir(parents=True, exist_ok=True)

    def raw(self, pkginfo: dict | str, files: dict[str, bytes] | None = None,
            compression: str = "zst") -> bytes:
        path = self.directory / f"{next(self.counter)}.pkg"
        return make_synthetic_package(path, pkginfo, files, compression).read_bytes()

    def __call__(self, name: str = "foo", version: str = "1.0-1", arch: str = "x86_64",
                 compression: str = "zst", files: dict[str, bytes] | None = None,
                 **fields: str) -> bytes:
        pkginfo = {"pkgname": name, "pkgbase": name, "pkgver": version,
                   "pkgdesc": f"{name} for tests", "builddate": "1700000000",
                   "packager": "Tests <tests@example.org>", "size": "1024", "arch": arch,
                   **fields}
        if files is None:
            files = {f"usr/share/{name}/README": f"{name} {version}\n".encode()}
        return self.raw(pkginfo, files, compression)


@pytest.fixture
def make_pkg(tmp_path) -> PackageMaker:
    return PackageMaker(tmp_path / "pkgsrc")


def filename(name: str, version: str = "1.0-1", arch: str = "x86_64", ext: str = ".pkg.tar.zst"):
    return f"{name}-{version}-{arch}{ext}"


# -- assertions and readers ----------------------------------------------------------------

def envelope(resp: Response) -> tuple[str, object]:
    """Check the {"message","data"} JSON body (compact, in that order); return its parts."""
    assert resp.headers.get("content-type", "").startswith("application/json"), resp
    parsed = resp.json()
    assert list(parsed) == ["message", "data"], parsed
    assert resp.body == json.dumps(parsed, separators=(",", ":")).encode(), resp.body
    return parsed["message"], parsed["data"]


def assert_error(resp: Response, status: int) -> str:
    assert resp.status == status, resp
    message, data = envelope(resp)
    assert data == "" and message, resp
    return message


def publish(client, body: bytes, repo: str = "core", query: str = "",
            headers: dict[str, str] | None = None) -> Response:
    return client.request("POST", f"/{repo}/publish{query}", body,
                          KEY if headers is None else headers)


def published(client, body: bytes, repo: str = "core", query: str = "") -> dict:
    resp = publish(client, body, repo, query)
    assert resp.status == 200, resp
    message, data = envelope(resp)
    assert message == ""
    return data


def read_archive(data: bytes) -> dict[str, str]:
    """Regular members of a gzip'd tar: {path: text}."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}


def get_ok(client, path: str) -> bytes:
    resp = client.request("GET", path)
    assert resp.status == 200, (path, resp)
    return resp.body


def db_descs(client, repo: str = "core", arch: str = "x86_64") -> dict[str, str]:
    """{entry dir: desc text} of the served <repo>.db."""
    members = read_archive(get_ok(client, f"/{repo}/{arch}/{repo}.db"))
    assert all(path.endswith("/desc") for path in members), members
    return {path[:-len("/desc")]: text for path, text in members.items()}


def desc_field(desc: str, key: str) -> str:
    lines = desc.split("\n")
    return lines[lines.index(f"%{key}%") + 1]


def pkg_files(client, repo: str = "core", arch: str = "x86_64") -> list[str]:
    directory = client.pkg_dir / repo / arch
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def disk_state(client) -> dict[str, tuple]:
    """Every dir and file under repos/, pkgs/ and tmp/ with size, mtime and inode."""
    state = {}
    for root in (client.data_dir / "repos", client.pkg_dir, client.data_dir / "tmp"):
        for path in root.rglob("*"):
            info = path.lstat()
            state[str(path.relative_to(client.data_dir))] = (
                path.is_dir(), info.st_size, info.st_mtime_ns, info.st_ino)
    return state


def snapshot(client, repo: str = "core", arch: str = "x86_64") -> tuple:
    """What must not change after a refused request: served archives and the disk."""
    db = client.request("GET", f"/{repo}/{arch}/{repo}.db")
    files = client.request("GET", f"/{repo}/{arch}/{repo}.files")
    return db.status, db.body, files.status, files.body, disk_state(client)


def assert_consistent(client, repo: str = "core", arch: str = "x86_64") -> dict[str, str]:
    """The db, the .files db and the package files agree; returns the db's descs."""
    descs = db_descs(client, repo, arch)
    files_members = read_archive(get_ok(client, f"/{repo}/{arch}/{repo}.files"))
    assert set(files_members) == {f"{e}/{k}" for e in descs for k in ("desc", "files")}
    for entry, desc in descs.items():
        assert files_members[f"{entry}/desc"] == desc
        data = get_ok(client, f"/{repo}/{arch}/{desc_field(desc, 'FILENAME')}")
        assert len(data) == int(desc_field(desc, "CSIZE")), entry
        assert hashlib.sha256(data).hexdigest() == desc_field(desc, "SHA256SUM"), entry
    wanted = sorted(desc_field(desc, "FILENAME") for desc in descs.values())
    assert pkg_files(client, repo, arch) == wanted
    return descs


def http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def parse_http_date(value: str) -> float:
    return email.utils.parsedate_to_datetime(value).timestamp()


# == the scenario suite (in-process and real server) =======================================

def test_health(reused_client):
    resp = reused_client.request("GET", "/health")
    assert resp.status == 200
    assert resp.body == b'{"message":"Healthy.","data":""}'
    assert resp.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/a/b/c/d", 404),
    ("GET", "/core/x86_64/core.db/extra", 404),
    ("POST", "/x/y/z/publish", 404),
    ("PUT", "/health", 405),
    ("POST", "/core/x86_64", 405),
    ("PATCH", "/core/x86_64/core.db", 405),
])
def test_unknown_routes_answer_json(reused_client, method, path, status):
    resp = reused_client.request(method, path, b"" if method in ("POST", "PUT", "PATCH") else None)
    assert_error(resp, status)
    assert b"<html" not in resp.body.lower()


@pytest.mark.parametrize("compression", ["zst", "gz", "xz", "none"])
def test_publish_each_compression(client, make_pkg, compression):
    body = make_pkg("foo", compression=compression,
                    files={"usr/bin/foo": b"#!/bin/sh\n", "usr/share/doc/foo/README": b"hi"})
    assert published(client, body) == {"name": "foo", "version": "1.0-1", "archs": ["x86_64"]}

    name = filename("foo", ext=EXTENSIONS[compression])
    db = get_ok(client, "/core/x86_64/core.db")
    assert get_ok(client, "/core/x86_64/core.db.tar.gz") == db
    files_db = get_ok(client, "/core/x86_64/core.files")
    assert get_ok(client, "/core/x86_64/core.files.tar.gz") == files_db

    desc = read_archive(db)["foo-1.0-1/desc"]
    assert desc_field(desc, "FILENAME") == name
    assert desc_field(desc, "CSIZE") == str(len(body))
    assert desc_field(desc, "SHA256SUM") == hashlib.sha256(body).hexdigest()
    assert read_archive(db) == {"foo-1.0-1/desc": desc}
    assert read_archive(files_db) == {
        "foo-1.0-1/desc": desc,
        "foo-1.0-1/files": "%FILES%\nusr/\nusr/bin/\nusr/bin/foo\nusr/share/\n"
                           "usr/share/doc/\nusr/share/doc/foo/\nusr/share/doc/foo/README\n"}
    assert get_ok(client, f"/core/x86_64/{name}") == body
    assert pkg_files(client) == [name]


def test_large_package_round_trip(client, make_pkg):
    data = random.Random(4).randbytes(3 * 1024 * 1024)  # incompressible: a 3 MiB upload
    body = make_pkg("big", files={"usr/share/big/blob": data})
    published(client, body)
    path = f"/core/x86_64/{filename('big')}"
    assert get_ok(client, path) == body
    part = client.request("GET", path, headers={"Range": "bytes=1000000-2000000"})
    assert part.status == 206 and part.body == body[1000000:2000001]
    assert_consistent(client)


def test_desc_lookup_and_package_delete(client, make_pkg):
    published(client, make_pkg("foo"))
    published(client, make_pkg("epochy", "1:2.0-1"))
    descs = db_descs(client)
    assert set(descs) == {"foo-1.0-1", "epochy-1:2.0-1"}

    resp = client.request("GET", "/core/x86_64/foo-1.0-1")
    assert resp.status == 200 and resp.body.decode() == descs["foo-1.0-1"]
    assert resp.headers["content-type"].startswith("text/plain")
    assert get_ok(client, "/core/x86_64/epochy-1:2.0-1").decode() == descs["epochy-1:2.0-1"]
    assert get_ok(client, "/core/x86_64/epochy-1%3A2.0-1").decode() == descs["epochy-1:2.0-1"]
    head = client.request("HEAD", "/core/x86_64/foo-1.0-1")
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(descs["foo-1.0-1"].encode()))
    assert_error(client.request("GET", "/core/x86_64/foo-1.1-1"), 404)
    assert_error(client.request("GET", "/core/x86_64/epochy-2.0-1"), 404)

    resp = client.request("DELETE", "/core/x86_64/foo", headers=KEY)
    assert resp.status == 200 and envelope(resp)[1] == ""
    assert client.request("HEAD", "/core/x86_64/foo-1.0-1").status == 404
    assert set(db_descs(client)) == {"epochy-1:2.0-1"}
    assert pkg_files(client) == [filename("epochy", "1:2.0-1")]
    assert_error(client.request("GET", f"/core/x86_64/{filename('foo')}"), 404)
    assert_error(client.request("DELETE", "/core/x86_64/foo", headers=KEY), 404)
    assert_error(client.request("DELETE", "/core/aarch64/epochy", headers=KEY), 404)


def test_any_package_goes_to_default_and_existing_arch_repos(client, make_pkg):
    assert published(client, make_pkg("tool", arch="aarch64"))["archs"] == ["aarch64"]
    body = make_pkg("common", arch="any")
    assert published(client, body) == {"name": "common", "version": "1.0-1",
                                       "archs": ["aarch64", "x86_64"]}
    assert set(db_descs(client, arch="aarch64")) == {"tool-1.0-1", "common-1.0-1"}
    assert set(db_descs(client, arch="x86_64")) == {"common-1.0-1"}
    for arch in ("aarch64", "x86_64"):
        assert get_ok(client, f"/core/{arch}/{filename('common', arch='any')}") == body


def test_any_package_is_backfilled_into_a_new_arch_repo(client, make_pkg):
    body = make_pkg("common", arch="any")
    assert published(client, body)["archs"] == ["x86_64"]
    assert published(client, make_pkg("tool", arch="aarch64"))["archs"] == ["aarch64"]

    aarch64 = db_descs(client, arch="aarch64")
    assert set(aarch64) == {"tool-1.0-1", "common-1.0-1"}
    assert aarch64["common-1.0-1"] == db_descs(client)["common-1.0-1"]
    assert get_ok(client, f"/core/aarch64/{filename('common', arch='any')}") == body
    assert_consistent(client, arch="aarch64")
    assert_consistent(client, arch="x86_64")


# -- version policy ------------------------------------------------------------------------

def test_newer_version_replaces_older(client, make_pkg):
    published(client, make_pkg("foo", "1.0-1"))
    published(client, make_pkg("foo", "1.0-2"))
    assert published(client, make_pkg("foo", "1:0.1-1"))["version"] == "1:0.1-1"  # epoch wins
    assert set(db_descs(client)) == {"foo-1:0.1-1"}
    assert pkg_files(client) == [filename("foo", "1:0.1-1")]
    assert_error(client.request("GET", f"/core/x86_64/{filename('foo', '1.0-1')}"), 404)


def test_older_version_is_refused(client, make_pkg):
    published(client, make_pkg("foo", "2.0-1"))
    before = snapshot(client)
    assert_error(publish(client, make_pkg("foo", "1.0-1")), 409)
    assert_error(publish(client, make_pkg("foo", "1.5-1", arch="any")), 409)
    assert_error(publish(client, make_pkg("foo", "1.0-1"), query="?force=false"), 409)
    assert_error(publish(client, make_pkg("foo", "1.0-1"), query="?force=0"), 409)
    assert snapshot(client) == before


@pytest.mark.parametrize("query", ["?force=true", "?force", "?force=1", "?force=false&force=true"])
def test_force_allows_a_downgrade(client, make_pkg, query):
    published(client, make_pkg("foo", "2.0-1"))
    assert published(client, make_pkg("foo", "1.0-1"), query=query)["version"] == "1.0-1"
    assert set(db_descs(client)) == {"foo-1.0-1"}
    assert pkg_files(client) == [filename("foo", "1.0-1")]


def test_invalid_force_value_is_a_bad_request(client, make_pkg):
    published(client, make_pkg("foo", "2.0-1"))
    before = snapshot(client)
    assert_error(publish(client, make_pkg("foo", "1.0-1"), query="?force=maybe"), 400)
    assert_error(publish(client, make_pkg("foo", "3.0-1"), query="?force=maybe"), 400)
    assert snapshot(client) == before


def test_same_version_republish_is_accepted(client, make_pkg):
    published(client, make_pkg("foo", files={"usr/share/foo/a": b"first"}))
    second = make_pkg("foo", files={"usr/share/foo/a": b"second build"})
    published(client, second)
    descs = assert_consistent(client)
    assert desc_field(descs["foo-1.0-1"], "SHA256SUM") == hashlib.sha256(second).hexdigest()
    assert get_ok(client, f"/core/x86_64/{filename('foo')}") == second


def test_any_package_replaces_an_arch_package_of_the_same_name(client, make_pkg):
    published(client, make_pkg("foo", "1.0-1"))
    assert published(client, make_pkg("foo", "1.1-1", arch="any"))["archs"] == ["x86_64"]
    descs = assert_consistent(client)
    assert set(descs) == {"foo-1.1-1"} and desc_field(descs["foo-1.1-1"], "ARCH") == "any"
    assert pkg_files(client) == [filename("foo", "1.1-1", "any")]


def test_split_packages(client, make_pkg):
    published(client, make_pkg("split-a", pkgbase="split"))
    published(client, make_pkg("split-b", pkgbase="split"))
    descs = db_descs(client)
    assert set(descs) == {"split-a-1.0-1", "split-b-1.0-1"}
    assert {desc_field(d, "BASE") for d in descs.values()} == {"split"}

    assert client.request("DELETE", "/core/x86_64/split-a", headers=KEY).status == 200
    assert set(assert_consistent(client)) == {"split-b-1.0-1"}


# -- authentication ------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}, {"X-Api-Key": ""},
                                     {"X-Api-Key": API_KEY + "x"}], ids=["none", "wrong",
                                                                         "empty", "longer"])
def test_protected_routes_need_the_key(reused_client, make_pkg, headers):
    published(reused_client, make_pkg("foo"))
    before = snapshot(reused_client)
    for method, path, body in [("POST", "/core/publish", make_pkg("bar")),
                               ("DELETE", "/core/x86_64/foo", None),
                               ("DELETE", "/core/x86_64", None),
                               ("DELETE", "/core", None)]:
        assert_error(reused_client.request(method, path, body, headers), 401)
    assert snapshot(reused_client) == before


def test_key_header_name_is_case_insensitive(client, make_pkg):
    published(client, make_pkg("foo"))
    resp = client.request("DELETE", "/core/x86_64/foo", headers={"x-api-key": API_KEY})
    assert resp.status == 200


# -- bad input -----------------------------------------------------------------------------

def _tar_without_pkginfo(make: PackageMaker) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("usr/bin/x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return _COMPRESSORS["zst"](buf.getvalue())


def _truncated_zstd(make: PackageMaker) -> bytes:
    body = make("trunc", files={f"usr/share/f{i}": random.Random(i).randbytes(2000)
                                for i in range(8)})
    return body[:len(body) // 2]


def _pkginfo_without(key: str):
    pkginfo = {"pkgname": "bad", "pkgver": "1.0-1", "arch": "x86_64"}
    return lambda make: make.raw({k: v for k, v in pkginfo.items() if k != key})


BAD_PACKAGES = {
    "random-bytes": lambda make: random.Random(1).randbytes(4096),
    "empty-body": lambda make: b"",
    "truncated-zstd": _truncated_zstd,
    "tar-without-pkginfo": _tar_without_pkginfo,
    "no-pkgname": _pkginfo_without("pkgname"),
    "no-pkgver": _pkginfo_without("pkgver"),
    "no-arch": _pkginfo_without("arch"),
    "pkgname-climbing-dirs": lambda make: make("../../evil"),
    "pkgname-with-slash": lambda make: make("a/b"),
    "pkgname-starting-with-dot": lambda make: make(".hidden"),
    "pkgver-without-pkgrel": lambda make: make("bad", "1.0"),
    "arch-with-slash": lambda make: make("bad", arch="../x86_64"),
    "absurd-size": lambda make: make("bad", size="9" * 40),
    "negative-size": lambda make: make("bad", size="-1"),
    "pkginfo-line-without-equals": lambda make: make.raw(
        "pkgname = bad\npkgver = 1.0-1\narch = x86_64\ngarbage\n"),
}


@pytest.mark.parametrize("case", list(BAD_PACKAGES))
def test_bad_package_is_refused(reused_client, make_pkg, case):
    published(reused_client, make_pkg("foo"))
    before = snapshot(reused_client)
    assert_error(publish(reused_client, BAD_PACKAGES[case](make_pkg)), 400)
    assert snapshot(reused_client) == before
    assert not any((reused_client.data_dir / "tmp").iterdir())


@pytest.mark.parametrize("repo", ["..", ".", "api", "API", "a%20b", ".x", "-x", "a%2Fb"])
def test_bad_repo_names(reused_client, make_pkg, repo):
    published(reused_client, make_pkg("foo"))
    before = snapshot(reused_client)
    for method, path, body in [("POST", f"/{repo}/publish", make_pkg("bar")),
                               ("GET", f"/{repo}/x86_64/{repo}.db", None),
                               ("HEAD", f"/{repo}/x86_64/{repo}.db", None),
                               ("GET", f"/{repo}/x86_64/{filename('foo')}", None),
                               ("DELETE", f"/{repo}/x86_64/foo", None),
                               ("DELETE", f"/{repo}/x86_64", None),
                               ("DELETE", f"/{repo}", None)]:
        resp = reused_client.request(method, path, body, KEY)
        assert resp.status in (400, 404, 405), (method, path, resp)  # a%2Fb splits the path
        if method != "HEAD":
            envelope(resp)
    assert snapshot(reused_client) == before


@pytest.mark.parametrize("arch", ["..", ".", "a%20b", "x86_64%2F..", "any%00"])
def test_bad_arch_names(reused_client, make_pkg, arch):
    published(reused_client, make_pkg("foo"))
    before = snapshot(reused_client)
    for method, path in [("GET", f"/core/{arch}/core.db"),
                         ("GET", f"/core/{arch}/{filename('foo')}"),
                         ("DELETE", f"/core/{arch}/foo"),
                         ("DELETE", f"/core/{arch}")]:
        resp = reused_client.request(method, path, None, KEY)
        assert resp.status in (400, 404), (method, path, resp)
        envelope(resp)
    assert snapshot(reused_client) == before


@pytest.mark.parametrize("name", ["..", ".core.db", "..%2F..%2Fvieter.sqlite",
                                  ".tmp.core.db.tar.gz", "foo.pkg%2F..", "core.db%00"])
def test_bad_file_names(reused_client, make_pkg, name):
    published(reused_client, make_pkg("foo"))
    resp = reused_client.request("GET", f"/core/x86_64/{name}")
    assert resp.status in (400, 404), resp
    envelope(resp)


def test_missing_content_length(reused_client, make_pkg):
    published(reused_client, make_pkg("foo"))
    before = snapshot(reused_client)
    assert_error(reused_client.post_without_length("/core/publish", make_pkg("bar")), 411)
    assert snapshot(reused_client) == before


def test_upload_larger_than_the_limit(small_client, make_pkg):
    published(small_client, make_pkg("foo"))
    before = snapshot(small_client)
    big = make_pkg("big", files={"usr/share/big": random.Random(2).randbytes(8192)})
    assert len(big) > 4096
    assert_error(publish(small_client, big), 413)
    assert snapshot(small_client) == before


def test_multipart_form_upload_is_refused(reused_client, make_pkg):
    published(reused_client, make_pkg("foo"))
    before = snapshot(reused_client)
    boundary = "vieterboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"bar.pkg.tar.zst\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + make_pkg("bar") + f"\r\n--{boundary}--\r\n".encode()
    resp = publish(reused_client, form, headers={
        **KEY, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error(resp, 400)
    assert snapshot(reused_client) == before


def test_upload_that_ends_early(reused_client, make_pkg):
    published(reused_client, make_pkg("foo"))
    before = snapshot(reused_client)
    resp = reused_client.post_truncated("/core/publish", make_pkg("bar")[:10], announced=1000)
    if resp is not None:  # the real server has nobody left to answer
        assert_error(resp, 400)
    assert reused_client.request("GET", "/health").status == 200
    assert snapshot(reused_client) == before
    assert not any((reused_client.data_dir / "tmp").iterdir())


def test_malformed_requests_answer_json(shared_server):
    raw = ServerClient(shared_server)._send_raw
    for request, status in [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n", 400),
            (ServerClient._head("/core/publish", "Content-Length: abc\r\n"), 400),
            (ServerClient._head("/core/publish", "Content-Length: 5\r\nContent-Length: 6\r\n"),
             400),
            (ServerClient._head("/core/publish", "Transfer-Encoding: gzip\r\n"), 501)]:
        resp = raw(request)
        assert_error(resp, status)


# -- HTTP file semantics -------------------------------------------------------------------

@pytest.fixture
def served_file(client, make_pkg):
    """A published package's bytes (foo-1.0-1, x86_64)."""
    body = make_pkg("foo", files={"usr/share/foo/data": random.Random(3).randbytes(3000)})
    published(client, body)
    return body


@pytest.mark.parametrize("target", ["package", "db"])
def test_file_semantics(client, served_file, target):
    path = f"/core/x86_64/{filename('foo')}" if target == "package" else "/core/x86_64/core.db"
    full = client.request("GET", path)
    assert full.status == 200 and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "application/octet-stream"
    body, size = full.body, len(full.body)
    assert full.headers["content-length"] == str(size) and size > 20
    if target == "package":
        assert body == served_file

    # conditional requests
    last_modified = full.headers["last-modified"]
    mtime = parse_http_date(last_modified)
    not_modified = client.request("GET", path, headers={"If-Modified-Since": last_modified})
    assert not_modified.status == 304 and not_modified.body == b""
    assert client.request("GET", path, headers={"If-Modified-Since": http_date(mtime + 60)}
                          ).status == 304
    older = client.request("GET", path, headers={"If-Modified-Since": http_date(mtime - 1)})
    assert older.status == 200 and older.body == body
    garbage = client.request("GET", path, headers={"If-Modified-Since": "yesterday"})
    assert garbage.status == 200 and garbage.body == body

    # ranges
    for spec, (start, end) in {"bytes=0-0": (0, 0), "bytes=-10": (size - 10, size - 1),
                               "bytes=5-": (5, size - 1), f"bytes=2-{size + 100}": (2, size - 1),
                               f"bytes={size - 1}-": (size - 1, size - 1),
                               f"bytes=-{size * 2}": (0, size - 1)}.items():
        part = client.request("GET", path, headers={"Range": spec})
        assert part.status == 206, spec
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}", spec
        assert part.body == body[start:end + 1], spec
        assert part.headers["content-length"] == str(end - start + 1), spec
    for spec in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        unsatisfiable = client.request("GET", path, headers={"Range": spec})
        assert unsatisfiable.status == 416, spec
        assert unsatisfiable.headers["content-range"] == f"bytes */{size}", spec
    for spec in ("garbage", "bytes=abc", "bytes=", "items=0-5", "bytes=0-1,4-5", "bytes=9-3"):
        ignored = client.request("GET", path, headers={"Range": spec})
        assert ignored.status == 200 and ignored.body == body, spec
        assert "content-range" not in ignored.headers

    # HEAD: headers of the full response, no body, Range ignored
    for headers in ({}, {"Range": "bytes=0-0"}):
        head = client.request("HEAD", path, headers=headers)
        assert head.status == 200 and head.body == b""
        assert head.headers["content-length"] == str(size)
        assert head.headers["last-modified"] == last_modified


def test_signatures_and_missing_files_are_404(client, served_file):
    for path in (f"/core/x86_64/{filename('foo')}.sig", "/core/x86_64/core.db.sig",
                 "/core/x86_64/core.files.sig", f"/core/x86_64/{filename('nope')}",
                 f"/core/aarch64/{filename('foo')}", "/core/aarch64/core.db",
                 "/other/x86_64/other.db", "/core/x86_64/nope-1.0-1"):
        assert_error(client.request("GET", path), 404)
        head = client.request("HEAD", path)
        assert head.status == 404 and head.body == b""


def test_paths_are_normalised(client, served_file):
    db = get_ok(client, "/core/x86_64/core.db")
    assert get_ok(client, "//core///x86_64/core.db") == db
    assert get_ok(client, "/core/x86_64/core.db/") == db
    assert get_ok(client, f"//core//x86_64//{filename('foo')}") == served_file


# -- removing arch-repos and repos ---------------------------------------------------------

def test_delete_arch_repo(client, make_pkg):
    published(client, make_pkg("foo"))
    published(client, make_pkg("tool", arch="aarch64"))
    resp = client.request("DELETE", "/core/x86_64", headers=KEY)
    assert resp.status == 200 and envelope(resp)[1] == ""
    assert not (client.data_dir / "repos" / "core" / "x86_64").exists()
    assert not (client.pkg_dir / "core" / "x86_64").exists()
    assert_error(client.request("GET", "/core/x86_64/core.db"), 404)
    assert_error(client.request("GET", f"/core/x86_64/{filename('foo')}"), 404)
    assert_error(client.request("DELETE", "/core/x86_64", headers=KEY), 404)
    assert set(assert_consistent(client, arch="aarch64")) == {"tool-1.0-1"}

    published(client, make_pkg("foo", "0.1-1"))  # a fresh arch-repo: no version history
    assert set(assert_consistent(client)) == {"foo-0.1-1"}


def test_delete_repo(client, make_pkg):
    published(client, make_pkg("common", arch="any"))
    published(client, make_pkg("tool", arch="aarch64"))
    published(client, make_pkg("foo"), repo="other")
    resp = client.request("DELETE", "/core", headers=KEY)
    assert resp.status == 200 and envelope(resp)[1] == ""
    assert not (client.data_dir / "repos" / "core").exists()
    assert not (client.pkg_dir / "core").exists()
    for arch in ("x86_64", "aarch64"):
        assert_error(client.request("GET", f"/core/{arch}/core.db"), 404)
    assert_error(client.request("DELETE", "/core", headers=KEY), 404)
    assert set(assert_consistent(client, repo="other")) == {"foo-1.0-1"}


# == real server only ======================================================================

def test_concurrent_publishes_of_different_packages(server_client, make_pkg):
    bodies = [make_pkg(f"pkg{i:02d}") for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(lambda b: publish(server_client, b), bodies))
    assert [r.status for r in results] == [200] * 40, [r for r in results if r.status != 200]
    assert set(assert_consistent(server_client)) == {f"pkg{i:02d}-1.0-1" for i in range(40)}


def test_concurrent_publishes_of_one_package(server_client, make_pkg):
    versions = [f"1.{i}-1" for i in range(20)]
    bodies = [make_pkg("racer", v) for v in versions]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda b: publish(server_client, b), bodies))
    assert {r.status for r in results} <= {200, 409}, results
    assert results[-1].status == 200  # nothing is newer than the last version
    for r in results:
        envelope(r)
    assert set(assert_consistent(server_client)) == {"racer-1.19-1"}
    assert pkg_files(server_client) == [filename("racer", "1.19-1")]


def test_restart_keeps_everything(server, make_pkg):
    client = ServerClient(server)
    bodies = {name: make_pkg(name) for name in ("a", "b")}
    for body in bodies.values():
        published(client, body)
    db = client.request("GET", "/core/x86_64/core.db")
    assert server.stop() == 0, server.log()

    again = ServerClient(ServerProcess(server.data_dir).start())
    try:
        after = again.request("GET", "/core/x86_64/core.db")
        assert after.body == db.body
        assert after.headers["last-modified"] == db.headers["last-modified"]
        assert set(assert_consistent(again)) == {"a-1.0-1", "b-1.0-1"}
        assert get_ok(again, f"/core/x86_64/{filename('a')}") == bodies["a"]
    finally:
        _stop_cleanly(again.proc)


def test_sigkill_during_publishes_then_restart(server, make_pkg):
    client = ServerClient(server)
    published(client, make_pkg("before"))
    bodies = [make_pkg(f"k{i:02d}") for i in range(60)]
    acknowledged: list[str] = []
    enough = threading.Event()

    def worker(indexes):
        for i in indexes:
            try:
                if publish(client, bodies[i]).status == 200:
                    acknowledged.append(f"k{i:02d}-1.0-1")
            except OSError:
                return
            if len(acknowledged) >= 8:
                enough.set()

    threads = [threading.Thread(target=worker, args=(range(n, 60, 4),)) for n in range(4)]
    for thread in threads:
        thread.start()
    assert enough.wait(60)
    server.stop(signal.SIGKILL)
    for thread in threads:
        thread.join(60)

    again = ServerClient(ServerProcess(server.data_dir).start())
    try:
        entries = set(assert_consistent(again))
        assert {"before-1.0-1", *acknowledged} <= entries
        assert not any((server.data_dir / "tmp").iterdir())
        published(again, make_pkg("after"))
        assert "after-1.0-1" in assert_consistent(again)
    finally:
        _stop_cleanly(again.proc)
