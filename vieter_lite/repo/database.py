"""Pure: the bytes of <repo>.db and <repo>.files archives (gzip'd tar, deterministic)."""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterable
from typing import BinaryIO, NamedTuple

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


class Part(NamedTuple):
    """A stretch of one archive's tar stream, deflated on its own (ends byte-aligned with a
    full flush, so parts concatenate), with its length and crc32 before compression."""

    raw_len: int
    crc: int
    deflated: bytes


class Segment(NamedTuple):
    """The same packages' stretch of the .db archive and of the .files archive."""

    db: Part
    files: Part
    packages: int


def _deflate(chunks: list[bytes], final: bool = False) -> Part:
    data = b"".join(chunks)
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)
    return Part(len(data), zlib.crc32(data), deflated)


def compress_segment(members: Iterable[tuple[bytes, bytes]]) -> Segment:
    """Deflate the members of some packages (in the order given) for both archives."""
    db_chunks: list[bytes] = []
    files_chunks: list[bytes] = []
    for desc_members, files_member in members:
        db_chunks.append(desc_members)
        files_chunks += (desc_members, files_member)
    return Segment(_deflate(db_chunks), _deflate(files_chunks), len(db_chunks))


_END = _deflate([b"\0" * (2 * BLOCK)], final=True)  # tar's end-of-archive blocks
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0: deterministic
_zeros = bytes(0)


def _crc_shift(crc: int, length: int) -> int:
    """crc32 of (data || next) from crc32(data), given crc32(next) is XORed in afterwards."""
    global _zeros
    if len(_zeros) < length:
        _zeros = bytes(max(length, 2 * len(_zeros)))
    zeros = memoryview(_zeros)[:length]
    return zlib.crc32(zeros, crc) ^ zlib.crc32(zeros)


def _write_gzip(parts: Iterable[Part], out: BinaryIO) -> None:
    out.write(_GZIP_HEADER)
    crc = size = 0
    for part in (*parts, _END):
        if part.raw_len:
            out.write(part.deflated)
            crc = _crc_shift(crc, part.raw_len) ^ part.crc
            size += part.raw_len
    out.write(crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little"))


def write_segments(segments: list[Segment], db_out: BinaryIO, files_out: BinaryIO) -> int:
    """Write both archives from segments, in the order given; returns the package count."""
    _write_gzip((s.db for s in segments), db_out)
    _write_gzip((s.files for s in segments), files_out)
    return sum(s.packages for s in segments)


def write_archives(members: Iterable[tuple[bytes, bytes]], db_out: BinaryIO,
                   files_out: BinaryIO) -> int:
    """Write both archives from (desc members, files member) pairs, in the order given."""
    return write_segments([compress_segment(members)], db_out, files_out)
