"""Pure: read a .pkg.tar[.zst|.xz|.gz|.bz2] file into a Package (metadata, file list, sha256)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, cast

from vieter_lite import names
from vieter_lite.errors import InvalidPackage
from vieter_lite.models import Package, PkgInfo
from vieter_lite.repo import zstd
from vieter_lite.repo.tarstream import TarReader

# makepkg writes a few KiB; the text is held in memory and parsed whole.
MAX_PKGINFO = 1024 * 1024
MAX_INT_FIELD = 2 ** 53  # sizes and dates beyond this are absurd
# Decompressed data is bounded by what a legitimate package of the largest allowed upload
# could unpack to: max_upload_size x UNPACK_RATIO. Packages shrink 3-5x (text-heavy ones with
# zstd -19 about 10x), so 20x refuses no real package, while a decompression bomb (thousands
# to one) is stopped after that many bytes, read in bounded memory.
UNPACK_RATIO = 20
DEFAULT_MAX_UPLOAD = 2 * 1024 ** 3  # the server's max_upload_size default


def unpacked_limit(max_upload_size: int) -> int:
    """The most decompressed bytes read from one package when uploads are capped at this size."""
    return max_upload_size * UNPACK_RATIO


# (magic bytes, extension, opener)
_FORMATS = (
    (b"\x28\xb5\x2f\xfd", ".pkg.tar.zst", "zst"),
    (b"\x1f\x8b", ".pkg.tar.gz", "gz"),
    (b"\xfd7zXZ\x00", ".pkg.tar.xz", "xz"),
    (b"BZh", ".pkg.tar.bz2", "bz2"),
)

# .PKGINFO key -> (PkgInfo attribute, multi-valued)
PKGINFO_KEYS: dict[str, tuple[str, bool]] = {
    "pkgname": ("name", False),
    "pkgbase": ("base", False),
    "pkgver": ("version", False),
    "pkgdesc": ("desc", False),
    "url": ("url", False),
    "builddate": ("builddate", False),
    "packager": ("packager", False),
    "size": ("isize", False),
    "arch": ("arch", False),
    "license": ("licenses", True),
    "replaces": ("replaces", True),
    "group": ("groups", True),
    "conflict": ("conflicts", True),
    "provides": ("provides", True),
    "backup": ("backup", True),
    "depend": ("depends", True),
    "optdepend": ("optdepends", True),
    "makedepend": ("makedepends", True),
    "checkdepend": ("checkdepends", True),
    "xdata": ("xdata", True),
}
_SPACES = re.compile(r"[ \t\n\r\f\v]+")  # bash [[:space:]] as repo-add uses it
DOTFILES_SKIPPED = (".PKGINFO", ".BUILDINFO", ".MTREE", ".INSTALL", ".CHANGELOG")


def zstd_available() -> bool:
    return zstd.backend() is not None


def parse_pkginfo(text: str) -> PkgInfo:
    """.PKGINFO text -> PkgInfo; unknown keys ignored, whitespace normalised like repo-add."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.split("\n"), 1):  # bash read splits on \n only
        if not line.strip(" \t\r") or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InvalidPackage(f"invalid line {lineno} in .PKGINFO: no '='")
        key, value = key.strip(), _SPACES.sub(" ", value).strip(" ")
        if key not in PKGINFO_KEYS:
            continue
        attr, is_multi = PKGINFO_KEYS[key]
        if is_multi:
            if value:
                multi.setdefault(attr, []).append(value)
        elif attr in single:
            raise InvalidPackage(f".PKGINFO repeats the single-valued key '{key}'")
        else:
            single[attr] = value
    for required in ("name", "version", "arch"):
        if not single.get(required):
            key = next(k for k, (a, _) in PKGINFO_KEYS.items() if a == required)
            raise InvalidPackage(f".PKGINFO has no {key}")
    try:
        names.check_pkgname(single["name"])
        names.check_version(single["version"])
        if single["arch"] != "any":
            names.check_arch(single["arch"])
        if single.get("base"):
            names.check_pkgname(single["base"])
    except ValueError as exc:
        raise InvalidPackage(f".PKGINFO: {exc}") from None
    for attr, key in (("isize", "size"), ("builddate", "builddate")):
        value = single.get(attr, "")
        if value and not (value.isascii() and value.isdecimal() and int(value) < MAX_INT_FIELD):
            raise InvalidPackage(f".PKGINFO: {key} '{value[:40]}' is not a sane number")
    fields: dict[str, Any] = {**single, **{k: tuple(v) for k, v in multi.items()}}
    return PkgInfo(**fields)


def detect_format(head: bytes) -> tuple[str, str]:
    """First bytes of a file -> (extension, compression); InvalidPackage if not a package."""
    for magic, extension, kind in _FORMATS:
        if head.startswith(magic):
            return extension, kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return ".pkg.tar", "none"
    raise InvalidPackage("not a package: expected a tar archive compressed with zstd, xz, "
                         "gzip or bzip2, or an uncompressed tar")


def _open_stream(path: Path, kind: str) -> BinaryIO:
    if kind == "zst":
        try:
            return zstd.open_zstd(path)
        except zstd.ZstdUnavailable as exc:
            raise InvalidPackage(str(exc)) from None
    # GzipFile, LZMAFile and BZ2File are binary file objects, typed only as BufferedIOBase
    if kind == "gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    if kind == "xz":
        return cast(BinaryIO, lzma.open(path, "rb"))
    if kind == "bz2":
        return cast(BinaryIO, bz2.open(path, "rb"))
    return open(path, "rb")


def file_list(paths: Iterable[str]) -> tuple[str, ...]:
    """repo-add's files list: no top-level dot-files, sorted (C locale), unique."""
    return tuple(sorted({p for p in paths if not p.startswith(".")},
                        key=lambda p: p.encode("utf-8", "surrogateescape")))


def read_package(path: Path, sha256: str | None = None,
                 max_unpacked: int = unpacked_limit(DEFAULT_MAX_UPLOAD)) -> Package:
    """Read a package file in one streaming pass; InvalidPackage for anything unreadable.

    Hostile archives (huge or unsafe paths, too many entries, a decompression bomb) are
    refused as soon as a limit is crossed, without reading the rest."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(512)
    extension, kind = detect_format(head)
    pkginfo_text: str | None = None
    paths: list[str] = []
    try:
        with _open_stream(path, kind) as stream:
            tar = TarReader(stream, max_unpacked)
            for entry in tar:
                if entry.path in (".PKGINFO", "./.PKGINFO") and entry.is_regular:
                    if pkginfo_text is not None:
                        raise InvalidPackage("package refused: it has a second .PKGINFO")
                    if entry.size > MAX_PKGINFO:
                        raise InvalidPackage(f"package refused: .PKGINFO is larger than "
                                             f"{MAX_PKGINFO} bytes (MAX_PKGINFO)")
                    pkginfo_text = tar.read_data(entry).decode("utf-8", "replace")
                paths.append(entry.path)
    except InvalidPackage:
        raise
    except (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise InvalidPackage(f"unreadable package archive: {exc or type(exc).__name__}") from None
    if pkginfo_text is None:
        raise InvalidPackage("package has no .PKGINFO")
    info = parse_pkginfo(pkginfo_text)
    if sha256 is None:
        with open(path, "rb") as fh:
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    return Package(info=info, extension=extension, csize=path.stat().st_size,
                   sha256=sha256, files=file_list(paths))
