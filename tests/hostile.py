"""Hostile package archives written as streams: raw tar headers, compressed chunk by chunk."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path

try:
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:
    import pyzstd as _zstd  # type: ignore[no-redef]

BLOCK = 512
MIB = 1024 * 1024
PKGINFO = b"pkgname = evil\npkgver = 1.0-1\narch = x86_64\nsize = 1\n"


def header(name: bytes, size: int = 0, kind: bytes = b"0", prefix: bytes = b"") -> bytes:
    """One ustar header block; sizes beyond 11 octal digits in GNU base-256."""
    buf = bytearray(BLOCK)
    buf[0:len(name[:100])] = name[:100]
    buf[100:108] = b"0000644\0"
    buf[108:116] = buf[116:124] = b"0000000\0"
    buf[124:136] = (b"%011o\0" % size if size < 8 ** 11
                    else b"\x80" + size.to_bytes(11, "big"))
    buf[136:148] = b"00000000000\0"
    buf[148:156] = b" " * 8
    buf[156:157] = kind
    buf[257:265] = b"ustar\x0000"
    buf[345:345 + len(prefix)] = prefix
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)


def pad(size: int) -> bytes:
    return bytes(-size % BLOCK)


def member(name: bytes, data: bytes = b"", kind: bytes = b"0") -> bytes:
    return header(name, len(data), kind) + data + pad(len(data))


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def pax_member(path: bytes, data: bytes = b"", kind: bytes = b"0") -> bytes:
    """An entry whose path is in a pax extended header (any length, any bytes)."""
    record = pax_record(b"path", path)
    return (header(b"PaxHeaders/x", len(record), b"x") + record + pad(len(record))
            + member(path[:100], data, kind))


def pkginfo(text: bytes = PKGINFO, name: bytes = b".PKGINFO") -> bytes:
    return member(name, text)


def end() -> bytes:
    return bytes(2 * BLOCK)


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    """`total` bytes made of `chunk` repeated, yielded piece by piece."""
    while total > 0:
        yield chunk[:total]
        total -= len(chunk)


def huge_gnu_longname(size: int) -> Iterator[bytes]:
    """A package with one GNU long name of `size` bytes ('a' repeated)."""
    yield pkginfo()
    yield header(b"././@LongLink", size + 1, b"L")
    yield from repeated(b"a" * MIB, size)
    yield b"\0" + pad(size + 1)
    yield member(b"aaaa", b"x")
    yield end()


def huge_pax_path(size: int) -> Iterator[bytes]:
    """A package with one pax 'path' record of `size` bytes."""
    prefix = b"%d path=" % (size + 8 + len(str(size + 8)))  # length field need not be exact
    total = len(prefix) + size + 1
    yield pkginfo()
    yield header(b"PaxHeaders/x", total, b"x")
    yield prefix
    yield from repeated(b"a" * MIB, size)
    yield b"\n" + pad(total)
    yield member(b"aaaa", b"x")
    yield end()


def many_entries(count: int, name: bytes = b"usr/share/e/%07d") -> Iterator[bytes]:
    """A package with `count` entries (the .PKGINFO included), all empty files."""
    yield pkginfo()
    for i in range(count - 1):
        yield header(name % i)
    yield end()


def write(path: Path, chunks: Iterable[bytes], compression: str = "zst") -> Path:
    """Compress a stream of tar bytes into `path` without holding it in memory."""
    with open(path, "wb") as out:
        if compression == "zst":
            comp = _zstd.ZstdCompressor()
            buffered: list[bytes] = []
            held = 0
            for chunk in chunks:
                buffered.append(chunk)
                held += len(chunk)
                if held >= MIB:
                    out.write(comp.compress(b"".join(buffered)))
                    buffered, held = [], 0
            out.write(comp.compress(b"".join(buffered)))
            out.write(comp.flush())
        elif compression == "gz":
            with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
                for chunk in chunks:
                    gz.write(chunk)
        else:
            for chunk in chunks:
                out.write(chunk)
    return path
