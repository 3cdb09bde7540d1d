"""Self-checks for the test helpers: makepkg factory, synthetic packages, oracles, pacman client."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from oracles import bsdtar_list, repo_add_entries, strip_md5, vercmp
from pacman_client import PacmanClient, pacman_available
from pkgfactory import build_with_makepkg, make_synthetic_package, makepkg_available

pytestmark = pytest.mark.integration
needs_makepkg = pytest.mark.skipif(
    not makepkg_available(), reason="makepkg/bsdtar/fakeroot or the VIETER_TEST_USER build user is missing")
needs_bsdtar = pytest.mark.skipif(not shutil.which("bsdtar"), reason="bsdtar (libarchive-tools) missing")
needs_repo_add = pytest.mark.skipif(not shutil.which("repo-add"), reason="repo-add (pacman-package-manager) missing")
needs_pacman = pytest.mark.skipif(not pacman_available(), reason="pacman missing or not running as root")

MAGIC = {"zst": b"\x28\xb5\x2f\xfd", "gz": b"\x1f\x8b", "xz": b"\xfd7zXZ\x00", "none": b".PKGINFO"}


def pkginfo_of(pkg) -> str:
    return subprocess.run(["bsdtar", "-xOf", str(pkg), ".PKGINFO"],
                          capture_output=True, text=True, check=True).stdout


@needs_makepkg
def test_makepkg_any_package(tmp_path):
    [pkg] = build_with_makepkg(tmp_path, "sc-any", "1.0")
    assert pkg.name == "sc-any-1.0-1-any.pkg.tar.zst"
    assert pkg.parent.parent == tmp_path and (pkg.parent / "PKGBUILD").is_file()
    listing = bsdtar_list(pkg)
    assert {".PKGINFO", ".MTREE", "usr/share/sc-any/README"} <= set(listing)
    info = pkginfo_of(pkg)
    assert "pkgname = sc-any\n" in info and "pkgver = 1.0-1\n" in info and "arch = any\n" in info


@needs_makepkg
def test_makepkg_split_package_with_epoch(tmp_path):
    pkgs = build_with_makepkg(tmp_path, ["sc-split-a", "sc-split-b"], "2.0", pkgrel="3", epoch="1",
                              arch="x86_64", pkgext=".pkg.tar.gz", depends=["missing-dep>=1"])
    assert [p.name for p in pkgs] == ["sc-split-a-1:2.0-3-x86_64.pkg.tar.gz",
                                      "sc-split-b-1:2.0-3-x86_64.pkg.tar.gz"]
    for pkg, name in zip(pkgs, ["sc-split-a", "sc-split-b"], strict=True):
        listing = bsdtar_list(pkg)
        assert ".PKGINFO" in listing and f"usr/bin/{name}" in listing
        assert f"usr/share/{name}/README" in listing
        info = pkginfo_of(pkg)
        assert f"pkgname = {name}\n" in info and "pkgbase = sc-split-a\n" in info
        assert "pkgver = 1:2.0-3\n" in info and "depend = missing-dep>=1\n" in info


@needs_makepkg
def test_makepkg_custom_files_and_failure(tmp_path):
    [pkg] = build_with_makepkg(tmp_path, "sc-files", "0.1", files={"etc/sc/a b.conf": "x='1'\n"})
    assert subprocess.run(["bsdtar", "-xOf", str(pkg), "etc/sc/a b.conf"],
                          capture_output=True, text=True, check=True).stdout == "x='1'\n"
    with pytest.raises(RuntimeError, match="makepkg failed"):
        build_with_makepkg(tmp_path, "sc-bad", "1.0", extra="package() { false; }")


@needs_bsdtar
@pytest.mark.parametrize("compression", ["zst", "gz", "xz", "none"])
def test_synthetic_package(tmp_path, compression):
    pkginfo = {"arch": "any", "pkgver": "1.2-1", "pkgname": "syn", "depend": ["a", "b>=2"], "size": "5"}
    pkg = make_synthetic_package(tmp_path / f"syn-1.2-1-any.pkg.tar.{compression}", pkginfo,
                                 {"usr/share/syn/data": b"hello"}, compression=compression)
    assert pkg.read_bytes().startswith(MAGIC[compression])
    assert pkginfo_of(pkg) == ("pkgname = syn\npkgver = 1.2-1\nsize = 5\narch = any\n"
                               "depend = a\ndepend = b>=2\n")
    assert bsdtar_list(pkg) == [".PKGINFO", "usr/", "usr/share/", "usr/share/syn/",
                                 "usr/share/syn/data"]


@needs_bsdtar
def test_synthetic_package_raw_pkginfo(tmp_path):
    raw = "# hand written\npkgname = raw\npkgver = 1-1\n"
    pkg = make_synthetic_package(tmp_path / "raw-1-1-any.pkg.tar.zst", raw)
    assert pkginfo_of(pkg) == raw and bsdtar_list(pkg) == [".PKGINFO"]


@needs_makepkg
@needs_repo_add
def test_repo_add_oracle(tmp_path):
    [pkg] = build_with_makepkg(tmp_path, "sc-oracle", "3.1", epoch="2")
    entries = repo_add_entries([pkg], tmp_path / "repo")
    assert list(entries) == ["sc-oracle-2:3.1-1"]
    desc, files = entries["sc-oracle-2:3.1-1"]["desc"], entries["sc-oracle-2:3.1-1"]["files"]
    assert desc.startswith(f"%FILENAME%\n{pkg.name}\n\n%NAME%\nsc-oracle\n\n%BASE%\nsc-oracle\n\n"
                           "%VERSION%\n2:3.1-1\n\n")
    assert f"%CSIZE%\n{pkg.stat().st_size}\n" in desc
    assert "%MD5SUM%" not in strip_md5(desc) and "%SHA256SUM%" in strip_md5(desc)
    assert files == "%FILES%\nusr/\nusr/share/\nusr/share/sc-oracle/\nusr/share/sc-oracle/README\n"


def test_vercmp_oracle():
    assert vercmp("1.0", "1.0.1") == -1
    assert vercmp("1:0.1", "2.0") == 1
    assert vercmp("1.0-1", "1.0-1") == 0


@needs_makepkg
@needs_repo_add
@needs_pacman
def test_pacman_client_installs_from_repo(tmp_path):
    built = build_with_makepkg(tmp_path, "sc-pac", "1.0", arch="x86_64")
    synthetic = make_synthetic_package(
        tmp_path / "sc-syn-0.5-1-any.pkg.tar.zst",
        {"pkgname": "sc-syn", "pkgbase": "sc-syn", "pkgver": "0.5-1", "size": "3", "arch": "any"},
        {"usr/share/sc-syn/x": b"syn"})
    repo = tmp_path / "repo"
    repo_add_entries([*built, synthetic], repo)
    client = PacmanClient(tmp_path / "root", {"oracle": f"file://{repo}"})
    assert client.installed() == {}
    client.sync_db()
    assert client.search_sync("oracle") == {"sc-pac": "1.0-1", "sc-syn": "0.5-1"}
    assert client.search_sync() == client.search_sync("oracle")
    client.install("sc-pac", "sc-syn")
    assert client.installed() == {"sc-pac": "1.0-1", "sc-syn": "0.5-1"}
    out = subprocess.run([str(tmp_path / "root/usr/bin/sc-pac")], capture_output=True, text=True)
    assert out.stdout == "sc-pac 1.0\n"
    assert (tmp_path / "root/usr/share/sc-syn/x").read_bytes() == b"syn"
    client.files_sync()
    assert client.list_files("sc-syn") == ["usr/", "usr/share/", "usr/share/sc-syn/", "usr/share/sc-syn/x"]
    client.upgrade()
    with pytest.raises(AssertionError, match="target not found"):
        client.install("no-such-package")
