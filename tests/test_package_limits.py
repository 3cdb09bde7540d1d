"""Hostile package files: each limit of the package reader refuses with a 400 naming it, early."""

from __future__ import annotations

import io

import pytest

import hostile
from hostile import MIB, PKGINFO, end, header, member, pad, pax_member, pkginfo
from vieter_lite.errors import InvalidPackage
from vieter_lite.repo.package import PKGINFO_KEYS, parse_pkginfo, read_package

MINIMAL = "pkgname = foo\npkgver = 1.0-1\narch = any\n"
SINGLE_VALUED = [key for key, (_, multi) in PKGINFO_KEYS.items() if not multi]
SAMPLE_VALUES = {"pkgname": "foo", "pkgbase": "foo", "pkgver": "1.0-1", "arch": "any",
                 "size": "1", "builddate": "1"}


@pytest.mark.parametrize("key", SINGLE_VALUED)
def test_repeated_single_valued_key_is_refused(key):
    value = SAMPLE_VALUES.get(key, "x")
    with pytest.raises(InvalidPackage, match=f"repeats the single-valued key '{key}'") as info:
        parse_pkginfo(MINIMAL + f"{key} = {value}\n{key} = {value}\n")
    assert info.value.status == 400


def test_multi_valued_keys_may_repeat():
    assert parse_pkginfo(MINIMAL + "depend = a\ndepend = b\n").depends == ("a", "b")


def _package(*parts: bytes) -> list[bytes]:
    return [pkginfo(), *parts, end()]


def _path_bytes_over_limit() -> list[bytes]:
    # 8192 paths of 4096 bytes are exactly 32 MiB; the .PKGINFO's 8 bytes cross it
    return _package(*(pax_member(b"usr/%07d/" % i + b"p" * 4084) for i in range(8192)))


HOSTILE = [
    ("gnu-longname-512MiB", lambda: hostile.huge_gnu_longname(512 * MIB),
     "path is longer than 4096 bytes"),
    ("pax-path-512MiB", lambda: hostile.huge_pax_path(512 * MIB),
     "pax extended headers larger than 1048576 bytes"),
    ("gnu-longlink-8KiB", lambda: _package(header(b"././@LongLink", 8193, b"K") + bytes(8704)
                                           + member(b"usr/l", kind=b"2")),
     "link target is longer than 4096 bytes"),
    ("pax-path-4097", lambda: _package(pax_member(b"usr/" + b"a" * 4093)), "longer than 4096 bytes"),
    ("newline-in-name", lambda: _package(member(b"usr/a\nb")), "control character"),
    ("tab-in-name", lambda: _package(member(b"usr/a\tb")), "control character"),
    ("escape-in-name", lambda: _package(member(b"usr/\x1b[31m")), "control character"),
    ("del-in-name", lambda: _package(member(b"usr/a\x7f")), "control character"),
    ("nul-in-pax-path", lambda: _package(pax_member(b"usr/a\0b")), "control character"),
    ("absolute-path", lambda: _package(member(b"/etc/passwd")), "absolute or has a '..' segment"),
    ("dotdot-segment", lambda: _package(member(b"usr/../../etc/x")), "absolute or has a '..'"),
    ("dotdot-alone", lambda: _package(member(b"..", kind=b"5")), "absolute or has a '..'"),
    # an empty path was listed as an empty line, which ends the %FILES% block of the files db
    ("empty-name", lambda: _package(member(b"")), "an entry without a path"),
    ("empty-pax-path", lambda: _package(pax_member(b"")), "an entry without a path"),
    ("dotdot-in-ustar-prefix", lambda: _package(header(b"x", prefix=b"usr/..")), "'..' segment"),
    ("200001-entries", lambda: hostile.many_entries(200_001), "more than 200000 entries"),
    ("path-bytes-over-32MiB", _path_bytes_over_limit, "paths add up to more than 33554432 bytes"),
    ("pkginfo-over-1MiB", lambda: [pkginfo(PKGINFO + b"#" * MIB), end()],
     ".PKGINFO is larger than 1048576 bytes"),
    ("second-pkginfo", lambda: _package(pkginfo()), "second .PKGINFO"),
    ("second-pkginfo-dot-slash", lambda: _package(pkginfo(name=b"./.PKGINFO")), "second .PKGINFO"),
    ("repeated-pkgname", lambda: [pkginfo(PKGINFO + b"pkgname = other\n"), end()],
     "repeats the single-valued key 'pkgname'"),
    ("repeated-arch", lambda: [pkginfo(PKGINFO + b"arch = any\n"), end()],
     "repeats the single-valued key 'arch'"),
]


@pytest.mark.parametrize("compression", ["zst", "gz"])
@pytest.mark.parametrize("make,message", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_package_is_refused(tmp_path, compression, make, message):
    path = hostile.write(tmp_path / f"evil-1.0-1-x86_64.pkg.tar.{compression}", make(), compression)
    with pytest.raises(InvalidPackage, match=message.replace(".", r"\.")) as info:
        read_package(path)
    assert info.value.status == 400


BOMBS = [
    # one file that announces more than the bound: refused at its header
    ("one-huge-file", lambda: [pkginfo(), header(b"usr/big", 64 * MIB)]),
    # many files, each below the bound: refused when their sum crosses it
    ("many-files", lambda: [pkginfo(), *(member(b"usr/f%03d" % i, bytes(MIB)) for i in range(64)),
                            end()]),
    # end-of-archive never comes: headers without end
    ("endless-empty-headers", lambda: [pkginfo(), *(header(b"usr/e%07d" % i) for i in range(40_000))]),
]


@pytest.mark.parametrize("make", [c[1] for c in BOMBS], ids=[c[0] for c in BOMBS])
def test_unpacked_size_is_bounded(tmp_path, make):
    path = hostile.write(tmp_path / "bomb-1.0-1-x86_64.pkg.tar.zst", make())
    with pytest.raises(InvalidPackage, match=r"unpacks to more than 8388608 bytes") as info:
        read_package(path, max_unpacked=8 * MIB)
    assert "max_upload_size" in info.value.message and info.value.status == 400


class CountingStream(io.RawIOBase):
    """An endless tar stream (a .PKGINFO, then `chunk` forever) that counts what is read."""

    def __init__(self, first: bytes, chunk: bytes):
        self.data, self.chunk, self.taken = first, chunk, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while len(self.data) < len(buffer):
            self.data += self.chunk
        count = len(buffer)
        buffer[:count], self.data = self.data[:count], self.data[count:]
        self.taken += count
        return count


@pytest.mark.parametrize("chunk,limit", [
    (member(b"usr/f", bytes(64 * 1024)), 4 * MIB),  # files whose data adds up
    (header(b"usr/e"), 4 * MIB),  # entries without data
    (header(b"././@LongLink", 4096, b"L") + b"a" * 4096, 4 * MIB),  # long names without entries
], ids=["file-data", "empty-entries", "long-names"])
def test_reader_stops_at_the_bound(chunk, limit):
    from vieter_lite.repo.tarstream import TarReader
    stream = CountingStream(pkginfo(), chunk)
    with pytest.raises(InvalidPackage, match="unpacks to more than"):
        for _ in TarReader(io.BufferedReader(stream, 64 * 1024), limit):
            pass
    assert stream.taken <= limit + 64 * 1024  # no more than one read-ahead past the bound


def test_huge_name_is_refused_before_it_is_read():
    from vieter_lite.repo.tarstream import TarReader
    stream = CountingStream(pkginfo() + header(b"././@LongLink", 512 * MIB, b"L"), b"a" * MIB)
    with pytest.raises(InvalidPackage, match="longer than 4096"):
        list(TarReader(stream, 2 ** 40))
    assert stream.taken < 4 * 1024


LEGAL = [
    ("path-of-4096-bytes", lambda: _package(pax_member(b"usr/" + b"a" * 4092)), 1),
    ("gnu-longname-4096", lambda: _package(header(b"././@LongLink", 4097, b"L") + b"u/" + b"b" * 4094
                                           + b"\0" + pad(4097) + member(b"u/bbb")), 1),
    ("200000-entries", lambda: hostile.many_entries(200_000), 199_999),
    ("utf8-and-spaces", lambda: _package(member("usr/Café ✓/a b".encode()), member(b"usr/./x")), 2),
    ("dots-that-are-not-dotdot", lambda: _package(member(b"usr/..a"), member(b"usr/a.."),
                                                  member(b"usr/...", kind=b"5")), 3),
    ("absolute-symlink-target", lambda: _package(
        header(b"././@LongLink", 12, b"K") + b"/etc/../x\0\0\0" + pad(12) + member(b"usr/l", kind=b"2")), 1),
]


@pytest.mark.parametrize("make,count", [c[1:] for c in LEGAL], ids=[c[0] for c in LEGAL])
def test_legal_packages_near_the_limits_are_read(tmp_path, make, count):
    path = hostile.write(tmp_path / "ok-1.0-1-x86_64.pkg.tar.zst", make())
    pkg = read_package(path)
    assert pkg.info.name == "evil" and len(pkg.files) == count


def test_unpacked_limit_follows_max_upload_size():
    from vieter_lite.repo.package import UNPACK_RATIO, unpacked_limit
    assert unpacked_limit(10 * MIB) == 10 * MIB * UNPACK_RATIO >= 10 * 10 * MIB
