"""Each zstd backend, alone (the others blocked), reads real packages and obeys the reader's limits."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

import hostile
from hostile import MIB, end, member, pkginfo
from pkgfactory import build_with_makepkg, make_synthetic_package, makepkg_available
from vieter_lite.errors import InvalidPackage
from vieter_lite.repo import zstd
from vieter_lite.repo.package import read_package


def _installed(name: str) -> bool:
    if name == zstd.PROGRAM:
        return shutil.which(name) is not None
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _block(monkeypatch: pytest.MonkeyPatch, keep: str | None) -> None:
    """Make every backend but `keep` unavailable: its import fails, or PATH is empty."""
    for name in zstd.MODULES:
        if name != keep:
            monkeypatch.setitem(sys.modules, name, None)
    if keep != zstd.PROGRAM:
        monkeypatch.setenv("PATH", "")


@pytest.fixture(params=zstd.BACKENDS)
def only(request, monkeypatch) -> str:
    """One backend, with all the others blocked."""
    name = request.param
    if not _installed(name):
        pytest.skip(f"{name} is not installed here")
    _block(monkeypatch, name)
    assert zstd.backend() == name and zstd.available() == [name]
    return name


@pytest.fixture(scope="module")
def makepkg_zst(tmp_path_factory) -> Path:
    if not makepkg_available():
        pytest.skip("makepkg or the build user is missing")
    work = tmp_path_factory.mktemp("makepkg-zst")
    files = {f"usr/share/real/{i:03d}.txt": f"line {i}\n" * 50 for i in range(120)}
    files["usr/bin/real"] = "#!/bin/sh\necho real\n"
    [path] = build_with_makepkg(work, "real-zst", "1.2", arch="x86_64", files=files)
    assert path.name.endswith(".pkg.tar.zst")
    return path


@pytest.fixture(scope="module")
def split_zst(tmp_path_factory) -> list[Path]:
    if not makepkg_available():
        pytest.skip("makepkg or the build user is missing")
    return build_with_makepkg(tmp_path_factory.mktemp("makepkg-split"), ["split-a", "split-b"],
                              "2.0", arch="x86_64")


def test_each_backend_reads_a_makepkg_package(only, makepkg_zst, split_zst):
    pkg = read_package(makepkg_zst)
    assert pkg.info.name == "real-zst" and pkg.info.version == "1.2-1"
    assert "usr/bin/real" in pkg.files and "usr/share/real/119.txt" in pkg.files
    assert len([f for f in pkg.files if f.startswith("usr/share/real/")]) == 121  # with the dir
    assert [read_package(p).info.name for p in split_zst] == ["split-a", "split-b"]


def test_backends_agree(makepkg_zst, monkeypatch):
    results = {}
    for name in [n for n in zstd.BACKENDS if _installed(n)]:
        with monkeypatch.context() as patch:
            _block(patch, name)
            results[name] = read_package(makepkg_zst)
    assert len(results) >= 2 and len(set(results.values())) == 1, results.keys()


def test_each_backend_refuses_a_truncated_package(only, tmp_path):
    files = {f"usr/share/t/{i}": os.urandom(4000) for i in range(16)}
    path = make_synthetic_package(tmp_path / "t-1-1-x86_64.pkg.tar.zst",
                                  "pkgname = t\npkgver = 1-1\narch = x86_64\n", files)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    with pytest.raises(InvalidPackage, match="unreadable package archive") as info:
        read_package(path)
    assert info.value.status == 400


def test_each_backend_refuses_garbage_after_the_magic(only, tmp_path):
    path = tmp_path / "g.pkg.tar.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x17" * 3000)
    with pytest.raises(InvalidPackage, match="unreadable package archive"):
        read_package(path)


def _children() -> list[str]:
    """Our child processes (zombies included) as 'pid state name'."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        rest = fields[1].split()
        if int(rest[1]) == os.getpid():
            found.append(f"{stat.parent.name} {rest[0]} {fields[0].split('(', 1)[1]}")
    return found


class Counted:
    """The real backend's reader, counting the decompressed bytes taken from it."""

    def __init__(self, stream):
        self.stream, self.taken = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.taken += len(data)
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stream.close()


def test_each_backend_stops_a_decompression_bomb_at_the_bound(only, tmp_path, monkeypatch):
    # 1 GiB of zeros in 1 MiB files compresses to a few KiB; the bound is 16 MiB
    bomb = hostile.write(tmp_path / "bomb-1-1-x86_64.pkg.tar.zst",
                         [pkginfo(), *(member(b"usr/z%04d" % i, bytes(MIB)) for i in range(1024)), end()])
    assert bomb.stat().st_size < 256 * 1024
    opened: list[Counted] = []
    real_open = zstd.open_zstd
    monkeypatch.setattr(zstd, "open_zstd", lambda path: opened.append(Counted(real_open(path)))
                        or opened[-1])
    before = _children()
    with pytest.raises(InvalidPackage, match="unpacks to more than 16777216 bytes"):
        read_package(bomb, max_unpacked=16 * MIB)
    assert len(opened) == 1 and opened[0].taken <= 16 * MIB  # stopped at the bound, not at 1 GiB
    assert _children() == before  # the zstd program (if used) was killed and reaped


def test_each_backend_refuses_the_huge_path_name(only, tmp_path):
    path = hostile.write(tmp_path / "evil.pkg.tar.zst", hostile.huge_gnu_longname(512 * MIB))
    before = _children()
    with pytest.raises(InvalidPackage, match="longer than 4096 bytes"):
        read_package(path)
    assert _children() == before


def test_no_backend_gives_a_400_naming_what_to_install(monkeypatch, tmp_path):
    _block(monkeypatch, None)
    assert zstd.backend() is None and zstd.available() == []
    info = "pkgname = nozstd\npkgver = 1-1\narch = x86_64\n"
    zst = make_synthetic_package(tmp_path / "nozstd-1-1-x86_64.pkg.tar.zst", info, {"a": b"a"})
    gz = make_synthetic_package(tmp_path / "nozstd-1-1-x86_64.pkg.tar.gz", info, {"a": b"a"},
                                compression="gz")
    assert read_package(gz).info.name == "nozstd"
    with pytest.raises(InvalidPackage) as refused:
        read_package(zst)
    assert refused.value.status == 400
    for hint in ("compression.zstd", "pyzstd", "python3-zstandard", "zstd program"):
        assert hint in refused.value.message
