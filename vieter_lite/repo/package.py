"""Pure: read a .pkg.tar[.zst|.xz|.gz|.bz2] file into a Package (metadata, file list, sha256)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import re
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable

from vieter_lite import names
from vieter_lite.errors import InvalidPackage
from vieter_lite.models import Package, PkgInfo

try:  # Python >= 3.14
    from compression import zstd as _zstd  # type: ignore[import-not-found]
    _ZstdError: type[Exception] = _zstd.ZstdError
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        import pyzstd as _zstd  # type: ignore[no-redef]
        _ZstdError = _zstd.ZstdError
    except ImportError:
        _zstd = None
        _ZstdError = OSError

MAX_PKGINFO = 1024 * 1024
MAX_ENTRIES = 2_000_000
MAX_INT_FIELD = 2 ** 53  # sizes and dates beyond this are absurd

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
    return _zstd is not None


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
    return PkgInfo(**single, **{k: tuple(v) for k, v in multi.items()})


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
        if _zstd is None:
            raise InvalidPackage("this server cannot read .zst packages: install pyzstd "
                                 "(python-pyzstd) or use Python >= 3.14")
        return _zstd.ZstdFile(path, "rb")  # type: ignore[return-value]
    opener = {"gz": gzip.open, "xz": lzma.open, "bz2": bz2.open}.get(kind)
    return opener(path, "rb") if opener else open(path, "rb")  # type: ignore[return-value]


def member_path(member: tarfile.TarInfo) -> str:
    """The entry path as bsdtar lists it (directories keep a trailing '/')."""
    name = member.name
    return name + "/" if member.isdir() and not name.endswith("/") else name


def file_list(paths: Iterable[str]) -> tuple[str, ...]:
    """repo-add's files list: no top-level dot-files, sorted (C locale), unique."""
    return tuple(sorted({p for p in paths if not p.startswith(".")},
                        key=lambda p: p.encode("utf-8", "surrogateescape")))


def read_package(path: Path, sha256: str | None = None) -> Package:
    """Read a package file in one streaming pass; InvalidPackage for anything unreadable."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(512)
    extension, kind = detect_format(head)
    pkginfo_text: str | None = None
    paths: list[str] = []
    try:
        with _open_stream(path, kind) as stream, \
                tarfile.open(fileobj=stream, mode="r|", errorlevel=2) as tar:
            for member in tar:
                if len(paths) >= MAX_ENTRIES:
                    raise InvalidPackage(f"package has more than {MAX_ENTRIES} entries")
                if member.name in (".PKGINFO", "./.PKGINFO") and member.isfile():
                    if member.size > MAX_PKGINFO:
                        raise InvalidPackage(".PKGINFO is larger than 1 MiB")
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    pkginfo_text = extracted.read().decode("utf-8", "replace")
                paths.append(member_path(member))
    except InvalidPackage:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError,
            _ZstdError) as exc:
        raise InvalidPackage(f"unreadable package archive: {exc or type(exc).__name__}") from None
    if pkginfo_text is None:
        raise InvalidPackage("package has no .PKGINFO")
    info = parse_pkginfo(pkginfo_text)
    if sha256 is None:
        with open(path, "rb") as fh:
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    return Package(info=info, extension=extension, csize=path.stat().st_size,
                   sha256=sha256, files=file_list(paths))
