"""Pure: the bytes of <repo>.db and <repo>.files archives (gzip'd tar, deterministic)."""

from __future__ import annotations

import tarfile
import zlib
from typing import BinaryIO, Iterable, NamedTuple

BLOCK = 512
COMPRESS_LEVEL = 6


class Entry(NamedTuple):
    """One package in an arch-repo, as the db archives need it."""

    entry: str      # '<name>-<version>'
    desc: str
    files: str
    mtime: int


def _ustar_header(name: bytes, size: int, mtime: int, is_dir: bool) -> bytes:
    """A ustar header block; tarfile's PAX writer for names ustar cannot hold."""
    if len(name) > 100 or not name.isascii():
        info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
        info.size, info.mtime = size, mtime
        info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        info.mode = 0o755 if is_dir else 0o644
        info.uname = info.gname = "root"
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    header = bytearray(BLOCK)
    header[0:len(name)] = name
    header[100:108] = b"%07o\0" % (0o755 if is_dir else 0o644)
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % mtime
    header[148:156] = b"        "
    header[156] = 0x35 if is_dir else 0x30
    header[257:265] = b"ustar\x0000"
    header[265:269] = b"root"
    header[297:301] = b"root"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _member(name: str, data: bytes, mtime: int) -> bytes:
    padding = -len(data) % BLOCK
    return _ustar_header(name.encode(), len(data), mtime, False) + data + b"\0" * padding


def entry_members(entry: Entry) -> tuple[bytes, bytes]:
    """The tar members for one package: (its directory and desc, its files)."""
    mtime = max(0, min(entry.mtime, 0o77777777777))
    desc = _ustar_header(entry.entry.encode() + b"/", 0, mtime, True) \
        + _member(entry.entry + "/desc", entry.desc.encode(), mtime)
    return desc, _member(entry.entry + "/files", entry.files.encode(), mtime)


class _GzipWriter:
    """A gzip stream with a fixed header (no name, mtime 0) so equal input gives equal bytes."""

    FLUSH_AT = 256 * 1024

    def __init__(self, out: BinaryIO, level: int = COMPRESS_LEVEL):
        self.out = out
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.crc = 0
        self.size = 0
        self.pending: list[bytes] = []
        self.pending_size = 0
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size >= self.FLUSH_AT:
            self._compress()

    def _compress(self) -> None:
        data = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self.out.write(self.compressor.compress(data))

    def close(self) -> None:
        self._compress()
        self.out.write(self.compressor.flush())
        self.out.write(self.crc.to_bytes(4, "little") + (self.size & 0xFFFFFFFF).to_bytes(4, "little"))


def write_archives(members: Iterable[tuple[bytes, bytes]], db_out: BinaryIO,
                   files_out: BinaryIO) -> int:
    """Write both archives from (desc members, files member) pairs, already in entry order."""
    db, files = _GzipWriter(db_out), _GzipWriter(files_out)
    count = 0
    for desc_members, files_member in members:
        db.write(desc_members)
        files.write(desc_members)
        files.write(files_member)
        count += 1
    for writer in (db, files):
        writer.write(b"\0" * (2 * BLOCK))
        writer.close()
    return count
