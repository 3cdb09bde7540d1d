"""Pure: a build's source bundle, the files of its PKGBUILD's directory as an uncompressed tar.

The agent makes one from the directory a source container leaves (podman's tar stream of
it), reads the one the server hands out, and packs the files for the build container.
Only regular files are taken, with relative names checked part by part; a link, a device
or anything else fails the build rather than being followed or skipped in silence.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass

from vieter_lite.agent.output import LimitedStream, OutputError

MAX_BUNDLE_BYTES = 1024 * 1024  # the tar the server takes (PUT .../source)
MAX_FILES = 500  # the files the server takes in one
# podman's stream of the directory carries directory entries and pax headers besides the
# files: read a little more than the bundle may hold, and judge the bundle itself.
MAX_STREAM_BYTES = 2 * MAX_BUNDLE_BYTES
EXECUTABLE = 0o755
REGULAR = 0o644

# A path part: no empty part, no '.', no '..', no control characters.
_PART = re.compile(r"[^\x00-\x1f\x7f/]+")


class BundleError(Exception):
    """The source is not a bundle the agent builds from (one-line reason)."""


@dataclass(frozen=True)
class SourceFile:
    name: str      # relative, '/'-separated
    data: bytes
    mode: int      # EXECUTABLE or REGULAR


def check_name(name: str) -> str:
    """`name` without a leading './', or BundleError when it is no plain relative path."""
    stripped = name[2:] if name.startswith("./") else name
    parts = stripped.rstrip("/").split("/")
    if not stripped or stripped.startswith("/") or any(
            p in ("", ".", "..") or not _PART.fullmatch(p) for p in parts):
        raise BundleError(f"the source names a file {name!r}: not a plain relative path")
    return "/".join(parts)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    return "not a regular file"


def _files(tar: tarfile.TarFile, strip_top: bool) -> list[SourceFile]:
    found: dict[str, SourceFile] = {}
    total = 0
    for member in tar:
        name = member.name
        if strip_top:  # podman's stream of a directory starts with the directory itself
            name = name.split("/", 1)[1] if "/" in name.strip("/") else ""
            if not name.strip("/"):
                continue
        name = check_name(name)
        if ".git" in name.split("/"):
            continue
        if member.isdir():
            continue
        if not member.isreg():
            raise BundleError(f"{name} is {_kind(member)}: a source bundle holds regular "
                              "files only")
        total += member.size
        if total > MAX_BUNDLE_BYTES:
            raise BundleError(f"the source is larger than {MAX_BUNDLE_BYTES} bytes")
        if name in found:
            raise BundleError(f"the source names {name} twice")
        if len(found) >= MAX_FILES:
            raise BundleError(f"the source has more than {MAX_FILES} files")
        source = tar.extractfile(member)
        assert source is not None  # a regular file
        found[name] = SourceFile(name, source.read(),
                                 EXECUTABLE if member.mode & 0o111 else REGULAR)
    return sorted(found.values(), key=lambda f: f.name)


def _need_pkgbuild(files: list[SourceFile]) -> list[SourceFile]:
    if "PKGBUILD" not in {f.name for f in files}:
        raise BundleError("the source has no PKGBUILD at its top")
    return files


def from_container(chunks: Iterable[bytes]) -> list[SourceFile]:
    """The files of a directory from podman's tar stream of it (read within limits)."""
    stream = io.BufferedReader(LimitedStream(chunks, MAX_STREAM_BYTES), 64 * 1024)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            return _need_pkgbuild(_files(tar, strip_top=True))
    except OutputError:
        raise BundleError(f"the source is larger than {MAX_BUNDLE_BYTES} bytes") from None
    except tarfile.TarError as exc:
        raise BundleError(f"cannot read the source: {exc}") from None


def read(data: bytes) -> list[SourceFile]:
    """The files of a bundle (as the server hands it out), checked like a fresh one."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"the source bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return _need_pkgbuild(_files(tar, strip_top=False))
    except tarfile.TarError as exc:
        raise BundleError(f"cannot read the source bundle: {exc}") from None


def _member(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.mtime = size, mode, kind, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def make(files: Iterable[SourceFile]) -> bytes:
    """The bundle: the files alone (no directory entries), sorted, owner 0 and time 0, so the
    same files always make the same bytes; BundleError past MAX_BUNDLE_BYTES. (The end is
    the two zero blocks, not padded to a whole record: the limit is about the files.)"""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(files, key=lambda f: f.name):
            tar.addfile(_member(f.name, len(f.data), f.mode), io.BytesIO(f.data))
        end = tar.offset + 2 * tarfile.BLOCKSIZE  # the two zero blocks that end a tar
    data = out.getvalue()[:end]  # without the padding to tar's 10 KiB records
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"the source bundle would be {len(data)} bytes, more than "
                          f"{MAX_BUNDLE_BYTES}")
    return data


def for_container(files: Iterable[SourceFile], top: str) -> bytes:
    """A tar to unpack at a container's `/`: directory `top` (and every directory on the
    way to a file), root's and readable by all, holding the files. It ends with the two
    zero blocks, without the padding to tar's 10 KiB records: Podman's copier stops reading
    at the end marker and exits, and the API then fails the copy now and then with "write
    |1: broken pipe" (HTTP 500) while it still sends the padding."""
    out = io.BytesIO()
    made: set[str] = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(files, key=lambda f: f.name):
            path = f"{top}/{f.name}"
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    made.add(folder)
                    tar.addfile(_member(folder, 0, EXECUTABLE, tarfile.DIRTYPE))
            tar.addfile(_member(path, len(f.data), f.mode), io.BytesIO(f.data))
        if top not in made:
            tar.addfile(_member(top, 0, EXECUTABLE, tarfile.DIRTYPE))
        end = tar.offset + 2 * tarfile.BLOCKSIZE
    return out.getvalue()[:end]


def summary(files: list[SourceFile], data: bytes | None = None) -> str:
    """'3 file(s), 2048 bytes' for a log line."""
    size = len(data) if data is not None else sum(len(f.data) for f in files)
    return f"{len(files)} file(s), {size} bytes"
