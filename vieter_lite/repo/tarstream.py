"""Pure: read tar headers from a stream within fixed limits.

A hostile archive is refused before it is read whole.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from vieter_lite.errors import InvalidPackage

BLOCK = 512
# Linux's PATH_MAX: no file system here can hold a longer path, so pacman could not extract it.
# Checked before a GNU long name or a pax header is read, so a huge name is never in memory.
MAX_PATH = 4096
# Far above the largest packages in the Arch repos (about 100 000 entries); each entry costs
# memory while the file list is built, sqlite space and a line in every client's files db.
MAX_ENTRIES = 200_000
# The whole file list goes into sqlite and the .files db as one text; real packages stay
# well below 10 MiB (200 000 entries of ~50 bytes).
MAX_PATH_BYTES = 32 * 1024 * 1024
# All pax extended headers before one entry (path, link target, xattrs and ACLs of one file):
# libarchive writes a few hundred bytes; 1 MiB bounds what is held in memory at once.
MAX_EXTENDED_HEADER = 1024 * 1024
_SKIP_CHUNK = 1024 * 1024  # data skipped in reads of this size: bounded memory, few calls

REGULAR = (b"0", b"\0", b"7", b"S")
_BUILTIN = (b"1", b"2", b"3", b"4", b"5", b"6")  # link, device, directory, fifo: no data
_LONGNAME, _LONGLINK = b"L", b"K"
_PAX, _PAX_GLOBAL, _PAX_SOLARIS = b"x", b"g", b"X"
_PAX_KEYS = ("path", "linkpath", "size", "GNU.sparse.name")  # the only pax keys used here
_UNSIGNED, _SIGNED = struct.Struct("148B8x356B"), struct.Struct("148b8x356b")
_OCTAL = re.compile(rb"[0-7]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Entry:
    path: str  # as bsdtar lists it: directories end with '/'
    kind: bytes  # the tar type flag
    size: int  # bytes of data stored in the archive

    @property
    def is_regular(self) -> bool:
        return self.kind in REGULAR

    @property
    def has_data(self) -> bool:
        """Data follows the header: regular files, and (as tarfile reads it) unknown types."""
        return self.kind in REGULAR or self.kind not in _BUILTIN


def _refuse(what: str) -> InvalidPackage:
    return InvalidPackage(f"package refused: {what}")


def _broken(what: str) -> InvalidPackage:
    return InvalidPackage(f"unreadable package archive: {what}")


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """A tar numeric field: octal text, or GNU base-256 when the first byte has its top bit set."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[:1] == b"\xff" else value
    digits = field.split(b"\0", 1)[0].strip()
    if not _OCTAL.fullmatch(digits):
        raise _broken("invalid number in a tar header")
    return int(digits or b"0", 8)


def _pax_records(data: bytes) -> dict[str, str]:
    """'<length> <key>=<value>\\n' records -> the keys this reader uses."""
    found: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos, pos + 24)
        if space < 0 or not data[pos:space].isdigit():
            raise _broken("invalid pax header")
        end = pos + int(data[pos:space])
        if end <= space or end > len(data) or data[end - 1] != 0x0A:
            raise _broken("invalid pax header")
        key, sep, value = data[space + 1:end - 1].partition(b"=")
        if not sep:
            raise _broken("invalid pax header")
        name = key.decode("utf-8", "surrogateescape")
        if name in _PAX_KEYS:
            found[name] = value.decode("utf-8", "surrogateescape")
        pos = end
    return found


def _checked_path(path: str) -> str:
    if not path:  # libarchive cannot extract it, and a files db would hold an empty line
        raise _refuse("an entry without a path")
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > MAX_PATH:
        raise _refuse(f"a path is longer than {MAX_PATH} bytes (MAX_PATH)")
    if _CONTROL.search(path):
        raise _refuse(f"the path {ascii(path[:80])} holds a control character")
    if path.startswith("/") or ".." in path.split("/"):
        raise _refuse(f"the path {ascii(path[:80])} is absolute or has a '..' segment")
    return path


class TarReader:
    """Iterate over the entries of a tar stream; the current entry's data may be read once.

    Every byte taken from `stream` counts against `max_bytes`, and an entry whose announced
    data would cross it is refused before it is read."""

    def __init__(self, stream: BinaryIO, max_bytes: int):
        self._stream = stream
        self._max_bytes = max_bytes
        self._consumed = 0
        self._pending = 0  # data bytes (with padding) of the current entry not read yet
        self._entries = 0
        self._path_bytes = 0

    # -- raw reads --------------------------------------------------------------------

    def _claim(self, count: int) -> None:
        if self._consumed + count > self._max_bytes:
            raise _refuse(f"it unpacks to more than {self._max_bytes} bytes "
                          "(max_upload_size times UNPACK_RATIO)")
        self._consumed += count

    def _read(self, count: int) -> bytes:
        self._claim(count)
        parts = []
        while count:
            data = self._stream.read(count)
            if not data:
                raise _broken("unexpected end of data")
            parts.append(data)
            count -= len(data)
        return b"".join(parts)

    def _skip(self, count: int) -> None:
        self._claim(count)
        while count:
            data = self._stream.read(min(count, _SKIP_CHUNK))
            if not data:
                raise _broken("unexpected end of data")
            count -= len(data)

    def _header(self) -> bytes | None:
        """The next header block; None at the end of the archive."""
        first = self._stream.read(BLOCK)
        if not first:
            if not self._consumed:
                raise _broken("empty archive")
            return None  # a missing end-of-archive marker, as bsdtar and tarfile accept
        self._claim(len(first))
        buf = first
        while len(buf) < BLOCK:
            more = self._stream.read(BLOCK - len(buf))
            if not more:
                raise _broken("unexpected end of data")
            self._claim(len(more))
            buf += more
        if buf == bytes(BLOCK):
            return None
        stored = _number(buf[148:156])
        if (stored != 256 + sum(_UNSIGNED.unpack(buf))
                and stored != 256 + sum(_SIGNED.unpack(buf))):  # old tars summed signed bytes
            raise _broken("bad tar header checksum")
        return buf

    @staticmethod
    def _padded(size: int) -> int:
        return -(-size // BLOCK) * BLOCK

    # -- entries ----------------------------------------------------------------------

    def read_data(self, entry: Entry) -> bytes:
        """The data of the entry last yielded (call once, before advancing)."""
        data = self._read(self._padded(entry.size))
        self._pending = 0
        return data[:entry.size]

    def __iter__(self) -> Iterator[Entry]:
        global_pax: dict[str, str] = {}
        global_bytes = 0
        longname: str | None = None
        pax: dict[str, str] = {}
        extended_bytes = 0
        while True:
            if self._pending:
                self._skip(self._pending)
                self._pending = 0
            buf = self._header()
            if buf is None:
                return
            kind = buf[156:157]
            size = _number(buf[124:136])
            if size < 0:
                raise _broken("negative size in a tar header")
            if kind in (_LONGNAME, _LONGLINK):
                if size > MAX_PATH + 1:  # the name and its NUL
                    what = "a path" if kind == _LONGNAME else "a link target"
                    raise _refuse(f"{what} is longer than {MAX_PATH} bytes (MAX_PATH)")
                data = self._read(self._padded(size))[:size]
                if kind == _LONGNAME:
                    longname = _text(data)
                continue
            if kind in (_PAX, _PAX_GLOBAL, _PAX_SOLARIS):
                if kind == _PAX_GLOBAL:
                    global_bytes += size
                else:
                    extended_bytes += size
                if max(global_bytes, extended_bytes) > MAX_EXTENDED_HEADER:
                    raise _refuse(f"pax extended headers larger than {MAX_EXTENDED_HEADER} "
                                  "bytes (MAX_EXTENDED_HEADER)")
                records = _pax_records(self._read(self._padded(size))[:size])
                (global_pax if kind == _PAX_GLOBAL else pax).update(records)
                continue
            if kind == b"S" and buf[482]:  # old GNU sparse: more sparse maps follow
                while self._read(BLOCK)[504]:
                    pass
            yield self._entry(buf, kind, size, longname, {**global_pax, **pax})
            longname, pax, extended_bytes = None, {}, 0

    def _entry(self, buf: bytes, kind: bytes, size: int, longname: str | None,
               pax: dict[str, str]) -> Entry:
        self._entries += 1
        if self._entries > MAX_ENTRIES:
            raise _refuse(f"it has more than {MAX_ENTRIES} entries (MAX_ENTRIES)")
        name = _text(buf[0:100])
        if kind == b"\0" and name.endswith("/"):
            kind = b"5"  # old tar: a directory is a regular file whose name ends with '/'
        if buf[257:263] == b"ustar\0" and buf[345] and kind != b"S":
            name = _text(buf[345:500]) + "/" + name
        path = pax.get("GNU.sparse.name") or pax.get("path") or longname or name
        if "size" in pax:
            if not pax["size"].isdigit():
                raise _broken("invalid size in a pax header")
            size = int(pax["size"])
        if kind == b"5" and not path.endswith("/"):
            path += "/"
        _checked_path(path)
        self._path_bytes += len(path.encode("utf-8", "surrogateescape"))
        if self._path_bytes > MAX_PATH_BYTES:
            raise _refuse(f"its paths add up to more than {MAX_PATH_BYTES} bytes (MAX_PATH_BYTES)")
        entry = Entry(path=path, kind=kind, size=size)
        self._pending = self._padded(size) if entry.has_data else 0
        return entry
