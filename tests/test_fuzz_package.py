"""Fuzzing the package reader, the .PKGINFO parser and the desc/files rendering.

- .PKGINFO fields -> a package built by tests/pkgfactory.py -> read_package gives the same
  fields back, whitespace noise changes nothing, and the desc and files texts rendered from
  what was read parse back to the same package;
- any .PKGINFO text is a PkgInfo or InvalidPackage (what parse_pkginfo documents);
- real packages (makepkg's and synthetic ones, every compression), mutated in their bytes
  or in their tar stream, are a Package or InvalidPackage, never another exception."""

from __future__ import annotations

import functools
import io
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import example
from hypothesis import strategies as st

from fuzzing import fuzz
from pkgfactory import _COMPRESSORS, build_with_makepkg, make_synthetic_package, makepkg_available
from vieter_lite import names
from vieter_lite.errors import InvalidPackage
from vieter_lite.models import Package, PkgInfo
from vieter_lite.repo import package as pkgmod
from vieter_lite.repo.desc import package_from_desc, parse_desc, render_desc, render_files

WORK = Path(tempfile.mkdtemp(prefix="vieter-fuzz-package-"))

NAME = st.from_regex(r"[a-z0-9@_+][a-z0-9@._+-]{0,20}", fullmatch=True)
VERSION = st.from_regex(r"([1-9][0-9]{0,2}:)?[0-9a-z][0-9a-z._+~]{0,10}-[0-9]{1,2}(\.[0-9])?",
                        fullmatch=True)
ARCH = st.sampled_from(["x86_64", "aarch64", "any", "armv7h", "i686"])
# a value as read back: no ASCII whitespace but single inner spaces, no line breaks
WORD = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zl", "Zp"],
                             exclude_characters=" \x85"), min_size=1, max_size=12)
VALUE = st.lists(WORD, min_size=1, max_size=3).map(" ".join)
SINGLE = {"pkgbase": NAME, "pkgdesc": VALUE, "url": VALUE, "packager": VALUE,
          "builddate": st.integers(0, 2**40).map(str), "size": st.integers(0, 2**40).map(str)}
MULTI = ["license", "replaces", "group", "conflict", "provides", "backup", "depend",
         "optdepend", "makedepend", "checkdepend", "xdata"]
PKGINFO = st.fixed_dictionaries(
    {"pkgname": NAME, "pkgver": VERSION, "arch": ARCH},
    optional={**SINGLE, **{k: st.lists(VALUE, min_size=1, max_size=3) for k in MULTI}})
COMPRESSION = st.sampled_from(["zst", "gz", "xz", "none"])


def expected_info(fields: dict) -> PkgInfo:
    """The PkgInfo that a .PKGINFO with these (canonical) fields stands for."""
    attrs = {attr: (tuple(fields[key]) if multi else fields[key])
             for key, (attr, multi) in pkgmod.PKGINFO_KEYS.items() if key in fields}
    return PkgInfo(**attrs)


def assert_desc_round_trip(pkg: Package) -> None:
    """desc and files rendered from a package parse back to it (backup and xdata are not
    in a repo db)."""
    desc, files = render_desc(pkg), render_files(pkg.files)
    back = package_from_desc(desc, files)
    assert back == replace(pkg, info=replace(pkg.info, backup=(), xdata=())), desc
    assert parse_desc(files) == {"FILES": list(pkg.files)}, files


def _write(data: bytes) -> Path:
    path = WORK / "fuzzed.pkg"
    path.write_bytes(data)
    return path


@fuzz(cost=2, fields=PKGINFO, compression=COMPRESSION)
def test_pkginfo_fields_survive_a_package_and_a_repo_db(fields, compression):
    path = make_synthetic_package(WORK / "p.pkg", fields, {"usr/share/x/a b": b"x"},
                                  compression)
    pkg = pkgmod.read_package(path)
    assert pkg.info == expected_info(fields)
    assert pkg.files == ("usr/", "usr/share/", "usr/share/x/", "usr/share/x/a b")
    assert_desc_round_trip(pkg)


NOISE = st.lists(st.sampled_from([" ", "\t", "\r", "\v", "\f", "  "]), max_size=3).map("".join)


@fuzz(fields=PKGINFO, noise=st.lists(st.tuples(NOISE, NOISE, NOISE), min_size=1, max_size=8),
      comments=st.lists(st.sampled_from(["# c", "", "  ", "\t# x = y", "unknownkey = v"]),
                        max_size=4))
def test_pkginfo_whitespace_and_comments_change_nothing(fields, noise, comments):
    lines = []
    for key, value in fields.items():
        for item in [value] if isinstance(value, str) else value:
            before, around, after = noise[len(lines) % len(noise)]
            spaced = item.replace(" ", " " + around)
            lines.append(f"{before}{key}{around}={around}{spaced}{after}")
    text = "\n".join(comments + lines + comments) + "\n"
    assert pkgmod.parse_pkginfo(text) == expected_info(fields)


PKGINFO_ALPHABET = st.sampled_from(
    list("=#\n\t \r\\x0a-:.") + ["pkgname", "pkgver", "arch", "pkgbase", "size", "builddate",
                                 "depend", "1.0-1", "x86_64", "any", "foo", "\u00e9", "\x85",
                                 "\u2028", "\ufffd", "9" * 20, "²", "٣"])


@fuzz(text=st.one_of(st.lists(PKGINFO_ALPHABET, max_size=40).map("".join),
                     st.text(max_size=80)))
@example(text="pkgname = a\npkgver = 1-1\narch = any\nsize = ²\n")
def test_any_pkginfo_text_is_a_pkginfo_or_invalid(text):
    try:
        info = pkgmod.parse_pkginfo(text)
    except InvalidPackage as exc:
        assert exc.status == 400 and exc.message
    else:
        names.check_pkgname(info.name)
        names.check_version(info.version)
        int(info.isize or 0), int(info.builddate or 0)


@fuzz(paths=st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\0"),
                             min_size=1, max_size=12), min_size=1, max_size=5))
def test_any_file_names_are_listed_readably_or_refused(paths):
    files = {p: b"" for p in paths}
    try:
        path = make_synthetic_package(WORK / "n.pkg", {"pkgname": "a", "pkgver": "1-1",
                                                       "arch": "any"}, files, "none")
    except (ValueError, UnicodeError):
        return  # tarfile itself refuses it: not a case for the reader
    try:
        pkg = pkgmod.read_package(path)
    except InvalidPackage:
        return
    assert all(p and "\n" not in p for p in pkg.files), pkg.files
    assert_desc_round_trip(pkg)


# -- mutated real packages -------------------------------------------------------------

@functools.cache
def seed_corpus() -> tuple[tuple[str, bytes], ...]:
    """(compression, bytes) of real packages: makepkg's (when it runs here) and synthetic
    ones in every compression, with a long name, a symlink and a directory tree."""
    seeds: list[tuple[str, bytes]] = []
    if makepkg_available():
        for ext, kind in ((".pkg.tar.zst", "zst"), (".pkg.tar.xz", "xz")):
            built = build_with_makepkg(WORK, "fuzzseed", "1.0", arch="x86_64", pkgext=ext,
                                       depends=["glibc>=2.38"])
            seeds.append((kind, built[0].read_bytes()))
    files = {"usr/bin/x": b"#!/bin/sh\n", "usr/share/" + "l" * 120 + "/f": b"long\n",
             "etc/x.conf": b"a=b\n"}
    info = {"pkgname": "seed", "pkgver": "1:2.0-3", "arch": "x86_64", "depend": ["a", "b>=1"],
            "backup": ["etc/x.conf"], "size": "10", "builddate": "1700000000"}
    for kind in _COMPRESSORS:
        path = make_synthetic_package(WORK / f"seed-{kind}", info, files, kind)
        seeds.append((kind, path.read_bytes()))
    return tuple(seeds)


def _unpacked(kind: str, data: bytes) -> bytes:
    if kind == "none":
        return data
    path = _write(data)
    opened = pkgmod._open_stream(path, kind)
    with opened as stream:
        return stream.read()


MUTATION = st.tuples(st.floats(0, 1, exclude_max=True),
                     st.sampled_from(["flip", "set", "insert", "delete", "truncate", "copy"]),
                     st.binary(min_size=1, max_size=8))


def mutate(data: bytes, mutations: list[tuple[float, str, bytes]]) -> bytes:
    buf = bytearray(data)
    for where, how, blob in mutations:
        at = int(where * len(buf)) if buf else 0
        if how == "flip" and buf:
            buf[at] ^= blob[0] or 1
        elif how == "set":
            buf[at:at + len(blob)] = blob
        elif how == "insert":
            buf[at:at] = blob
        elif how == "delete":
            del buf[at:at + blob[0]]
        elif how == "truncate":
            del buf[at:]
        elif how == "copy":  # a stretch of the file again somewhere else (a header, say)
            start = blob[0] * 512 % max(1, len(buf))
            buf[at:at] = buf[start:start + 512]
    return bytes(buf)


def assert_package_or_invalid(path: Path, max_unpacked: int | None = None) -> Package | None:
    """The package read from `path` (checked), or None when it was refused."""
    try:
        pkg = pkgmod.read_package(path, max_unpacked=max_unpacked) if max_unpacked \
            else pkgmod.read_package(path)
    except InvalidPackage as exc:
        assert exc.status == 400 and exc.message
        return None
    names.check_pkgname(pkg.info.name)
    names.check_version(pkg.info.version)
    assert len(pkg.sha256) == 64
    assert_desc_round_trip(pkg)
    return pkg


@fuzz(cost=2, seed=st.integers(0, 10), layer=st.sampled_from(["file", "tar"]),
      mutations=st.lists(MUTATION, min_size=1, max_size=4),
      limit=st.sampled_from([None, None, 600, 4096, 20000]))
def test_a_mutated_real_package_is_a_package_or_invalid(seed, layer, mutations, limit):
    corpus = seed_corpus()
    kind, data = corpus[seed % len(corpus)]
    # "tar": mutate the tar stream, then compress it again
    data = _COMPRESSORS[kind](mutate(_unpacked(kind, data), mutations)) if layer == "tar" \
        else mutate(data, mutations)
    assert_package_or_invalid(_write(data), limit)


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


PKGINFO_TEXT = b"pkgname = a\npkgver = 1-1\narch = any\n"
ENTRY_NAME = st.one_of(st.sampled_from([".PKGINFO", "./.PKGINFO", "usr/", "usr/bin/x", "",
                                        "./", "a/../b", "/etc/x", "x" * 200, "é/ü"]),
                       st.text(max_size=20))


@fuzz(entries=st.lists(st.tuples(ENTRY_NAME, st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
     b"V", b"x"]), st.binary(max_size=30)), max_size=5),
      fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]))
@example(entries=[("", tarfile.REGTYPE, b"")], fmt=tarfile.GNU_FORMAT)  # was listed as ''
def test_any_tar_layout_is_a_package_or_invalid(entries, fmt):
    pkginfo = tarfile.TarInfo(".PKGINFO")
    pkginfo.size = len(PKGINFO_TEXT)
    members = [(pkginfo, PKGINFO_TEXT)]
    for name, kind, data in entries:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.linkname = kind, len(data) if kind == tarfile.REGTYPE \
            else 0, "t"
        members.append((info, data))
    try:
        raw = _tar(members, fmt)
    except (ValueError, UnicodeError):
        return  # tarfile cannot write it
    got = assert_package_or_invalid(_write(raw))
    assert got is not None or entries  # the .PKGINFO alone is a package
