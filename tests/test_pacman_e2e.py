"""End to end: real makepkg packages published over HTTP to a real server process, consumed by
the real pacman client (private root, SigLevel = Never), and checked against Debian's repo-add."""

from __future__ import annotations

import email.utils
import fcntl
import io
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import tarfile
import termios
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from conftest import API_KEY, ServerProcess
from oracles import bsdtar_list, repo_add_entries, strip_md5
from pacman_client import PacmanClient, pacman_available
from pkgfactory import build_with_makepkg, makepkg_available

REPO = "e2e"
ARCH = "x86_64"


def _missing() -> str | None:
    if not makepkg_available():
        return "makepkg/bsdtar/fakeroot (or, as root, runuser and the VIETER_TEST_USER build user) missing"
    if not pacman_available():
        return "pacman missing, or not running as root (pacman -S needs root)"
    if not shutil.which("repo-add"):
        return "repo-add (pacman-package-manager) missing"
    return None


pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


# -- packages: built once per module -----------------------------------------------------

@dataclass(frozen=True)
class Pkg:
    name: str
    version: str  # full [epoch:]pkgver-pkgrel, as pacman prints it
    path: Path


@dataclass(frozen=True)
class Built:
    any: Pkg        # arch=any, .pkg.tar.zst
    arch: Pkg       # arch=x86_64 with usr/bin/<name>, .pkg.tar.xz
    arch2: Pkg      # the same, pkgrel=2
    epoch: Pkg      # epoch=2, .pkg.tar.gz
    split: tuple[Pkg, Pkg]  # pkgname=(a b), .pkg.tar.zst
    late: Pkg       # published late, for the If-Modified-Since test (.pkg.tar.gz)

    @property
    def initial(self) -> list[Pkg]:
        return [self.any, self.arch, self.epoch, *self.split]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Every package the module needs, built by makepkg in parallel (each build is ~2-3 s)."""
    work = tmp_path_factory.mktemp("e2e-pkgs")
    specs = {
        "any": dict(pkgname="e2e-any", pkgver="1.0", pkgext=".pkg.tar.zst"),
        "arch": dict(pkgname="e2e-arch", pkgver="2.5", arch="x86_64", pkgext=".pkg.tar.xz"),
        "arch2": dict(pkgname="e2e-arch", pkgver="2.5", pkgrel="2", arch="x86_64",
                      pkgext=".pkg.tar.xz"),
        "epoch": dict(pkgname="e2e-epoch", pkgver="0.9", epoch="2", pkgext=".pkg.tar.gz"),
        "split": dict(pkgname=["e2e-split-a", "e2e-split-b"], pkgver="3.1", arch="x86_64",
                      pkgext=".pkg.tar.zst"),
        "late": dict(pkgname="e2e-late", pkgver="0.1", pkgext=".pkg.tar.gz"),
    }
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = {key: pool.submit(build_with_makepkg, work, **spec) for key, spec in specs.items()}
        paths = {key: future.result() for key, future in futures.items()}
    return Built(
        any=Pkg("e2e-any", "1.0-1", *paths["any"]),
        arch=Pkg("e2e-arch", "2.5-1", *paths["arch"]),
        arch2=Pkg("e2e-arch", "2.5-2", *paths["arch2"]),
        epoch=Pkg("e2e-epoch", "2:0.9-1", *paths["epoch"]),
        split=(Pkg("e2e-split-a", "3.1-1", paths["split"][0]),
               Pkg("e2e-split-b", "3.1-1", paths["split"][1])),
        late=Pkg("e2e-late", "0.1-1", *paths["late"]),
    )


def test_built_packages_are_what_the_tests_assume(built: Built):
    names = {p.path.name for p in [*built.initial, built.arch2, built.late]}
    assert names == {
        "e2e-any-1.0-1-any.pkg.tar.zst", "e2e-arch-2.5-1-x86_64.pkg.tar.xz",
        "e2e-arch-2.5-2-x86_64.pkg.tar.xz", "e2e-epoch-2:0.9-1-any.pkg.tar.gz",
        "e2e-split-a-3.1-1-x86_64.pkg.tar.zst", "e2e-split-b-3.1-1-x86_64.pkg.tar.zst",
        "e2e-late-0.1-1-any.pkg.tar.gz"}
    assert "usr/bin/e2e-arch" in bsdtar_list(built.arch.path)


# -- HTTP helpers --------------------------------------------------------------------------

def publish(server: ServerProcess, pkg: Pkg) -> dict:
    body = pkg.path.read_bytes()
    req = urllib.request.Request(
        f"{server.url}/{REPO}/publish", data=body, method="POST",
        headers={"X-Api-Key": API_KEY, "Content-Type": "application/octet-stream",
                 "Content-Length": str(len(body))})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"publish {pkg.path.name}: HTTP {exc.code}: {exc.read()!r}\n"
                             f"{server.log()}") from None


def delete(server: ServerProcess, name: str) -> None:
    req = urllib.request.Request(f"{server.url}/{REPO}/{ARCH}/{name}", method="DELETE",
                                 headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def fetch(server: ServerProcess, filename: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(f"{server.url}/{REPO}/{ARCH}/{filename}", timeout=30) as resp:
        assert resp.status == 200
        return resp.read(), dict(resp.headers)


def archive_entries(data: bytes) -> dict[str, dict[str, str]]:
    """{entry dir: {"desc": ..., "files": ...}} of a db/files archive (as repo_add_entries)."""
    entries: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                path = PurePosixPath(member.name)
                entries.setdefault(str(path.parent), {})[path.name] = \
                    tar.extractfile(member).read().decode()
    return entries


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_tty(client: PacmanClient, *args: str) -> str:
    """Run pacman with its output on a pseudo-terminal and return that output (ANSI codes
    stripped). Without a terminal pacman 6 prints only "<repo> downloading..." and never
    reports "<repo> is up to date" (dload_complete_event returns early)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
    try:
        proc = subprocess.Popen(["pacman", "--config", str(client.conf), "--noconfirm", *args],
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                env={**os.environ, "LANG": "C", "LC_ALL": "C"})
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=60)
    out = _ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r", "")
    assert code == 0, f"pacman {' '.join(args)} exited {code}:\n{out}"
    return out


@pytest.fixture
def client(tmp_path: Path, server: ServerProcess) -> PacmanClient:
    return PacmanClient(tmp_path / "root", {REPO: f"{server.url}/$repo/$arch"}, arch=ARCH)


@pytest.fixture
def published(server: ServerProcess, built: Built) -> list[Pkg]:
    for pkg in built.initial:
        data = publish(server, pkg)["data"]
        assert (data["name"], data["version"], data["archs"]) == (pkg.name, pkg.version, [ARCH])
    return built.initial


# -- the tests -----------------------------------------------------------------------------

def test_sync_lists_every_package_with_its_version(client: PacmanClient, published: list[Pkg]):
    client.sync_db()
    assert client.search_sync(REPO) == {p.name: p.version for p in published}
    assert client.search_sync(REPO)["e2e-epoch"] == "2:0.9-1"


def test_install_every_package(client: PacmanClient, built: Built, published: list[Pkg]):
    client.sync_db()
    client.install(*(p.name for p in published))
    assert client.installed() == {p.name: p.version for p in published}
    root = client.root
    assert (root / "usr/share/e2e-any/README").read_text() == \
        "e2e-any 1.0-1: built by vieter_lite tests\n"
    assert (root / "usr/share/e2e-epoch/README").is_file()
    for half in built.split:
        assert (root / f"usr/share/{half.name}/README").is_file()
        assert os.access(root / f"usr/bin/{half.name}", os.X_OK)
    script = root / "usr/bin/e2e-arch"
    assert os.access(script, os.X_OK)
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout
    assert out == "e2e-arch 2.5\n"
    # pacman fetched the very bytes that were published
    cache = root / "var/cache/pacman/pkg"
    for pkg in published:
        assert (cache / pkg.path.name).read_bytes() == pkg.path.read_bytes()


def test_files_db_lists_package_contents(client: PacmanClient, published: list[Pkg]):
    client.files_sync()
    for pkg in published:
        expected = sorted({p for p in bsdtar_list(pkg.path) if not p.startswith(".")})
        assert sorted(client.list_files(pkg.name)) == expected, pkg.name
    owner = client.run("-F", "usr/bin/e2e-arch").stdout
    assert f"{REPO}/e2e-arch 2.5-1" in owner


def test_newer_pkgrel_is_upgraded(client: PacmanClient, server: ServerProcess, built: Built,
                                  published: list[Pkg]):
    client.sync_db()
    client.install(built.arch.name)
    assert client.installed() == {"e2e-arch": "2.5-1"}
    publish(server, built.arch2)
    client.upgrade()
    assert client.installed() == {"e2e-arch": "2.5-2"}
    assert client.search_sync(REPO)["e2e-arch"] == "2.5-2"
    # the old file is gone from the server, the new one is served
    with pytest.raises(urllib.error.HTTPError) as exc:
        fetch(server, built.arch.path.name)
    assert exc.value.code == 404
    assert fetch(server, built.arch2.path.name)[0] == built.arch2.path.read_bytes()


def test_deleted_package_disappears(client: PacmanClient, server: ServerProcess, built: Built,
                                    published: list[Pkg]):
    client.sync_db()
    assert built.any.name in client.search_sync(REPO)
    delete(server, built.any.name)
    client.sync_db()
    listed = client.search_sync(REPO)
    assert built.any.name not in listed
    assert set(listed) == {p.name for p in published} - {built.any.name}
    proc = client.run("-S", "--noscriptlet", "-dd", built.any.name, check=False)
    assert proc.returncode != 0
    assert "target not found: e2e-any" in proc.stderr
    assert built.any.name not in client.installed()


def test_files_archive_equals_repo_add(tmp_path: Path, server: ServerProcess,
                                       published: list[Pkg]):
    expected = repo_add_entries([p.path for p in published], tmp_path / "oracle")
    data, _ = fetch(server, f"{REPO}.files")
    actual = archive_entries(data)
    assert sorted(actual) == sorted(expected)
    assert sorted(actual) == sorted(f"{p.name}-{p.version}" for p in published)
    for entry, want in expected.items():
        got = actual[entry]
        assert sorted(got) == sorted(want) == ["desc", "files"], entry
        assert strip_md5(got["desc"]).encode() == strip_md5(want["desc"]).encode(), entry
        assert got["files"].encode() == want["files"].encode(), entry
    # the .db archive holds the same desc entries, and no files lists
    db_data, _ = fetch(server, f"{REPO}.db")
    db_entries = archive_entries(db_data)
    assert {e: v["desc"] for e, v in db_entries.items()} == {e: v["desc"] for e, v in actual.items()}
    assert all(set(v) == {"desc"} for v in db_entries.values())


def test_sync_without_force_uses_if_modified_since(client: PacmanClient, server: ServerProcess,
                                                   built: Built, published: list[Pkg]):
    up_to_date = f"{REPO} is up to date"
    assert up_to_date not in run_tty(client, "-Sy")
    assert up_to_date in run_tty(client, "-Sy")  # If-Modified-Since -> 304
    _, headers = fetch(server, f"{REPO}.db")
    before = email.utils.parsedate_to_datetime(headers["Last-Modified"]).timestamp()

    # Publish and sync at once, well within the second of the db pacman holds (the five
    # publishes above already happened within about one second): the server must still
    # give the new db a later Last-Modified, or pacman's -Sy would keep the stale copy.
    publish(server, built.late)
    assert up_to_date not in run_tty(client, "-Sy")
    assert client.search_sync(REPO)[built.late.name] == built.late.version
    _, headers = fetch(server, f"{REPO}.db")
    after = email.utils.parsedate_to_datetime(headers["Last-Modified"]).timestamp()
    assert after > before
    assert up_to_date in run_tty(client, "-Sy")

    # the same for the files db
    assert up_to_date not in run_tty(client, "-Fy")
    assert up_to_date in run_tty(client, "-Fy")
    assert "e2e-late usr/share/e2e-late/README\n" in client.run("-Fl").stdout
    delete(server, built.late.name)
    assert up_to_date not in run_tty(client, "-Fy")
    assert built.late.name not in client.run("-Fl").stdout
    assert up_to_date in run_tty(client, "-Fy")
