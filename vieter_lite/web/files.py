"""Serving files and small bodies: Last-Modified/If-Modified-Since, single Range (RFC 9110)."""

from __future__ import annotations

import email.utils
import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bottle import HTTPResponse, request

from vieter_lite.errors import NotFound
from vieter_lite.web.http import not_modified_since

OCTET = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
CHUNK = 64 * 1024
# open() errors that mean "there is no such file" for a client's path.
_NO_SUCH_FILE = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG)
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """A single 'bytes=' range -> (start, end inclusive); None to ignore the header
    (other units, several ranges, malformed); False when it cannot be satisfied."""
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec.strip())
    if not match or not any(match.groups()):
        return None
    first, last = (_int(g) if g else None for g in match.groups())
    if first is None:  # suffix: the last N bytes
        length = last or 0
        if length == 0 or size == 0:
            return False
        return max(0, size - length), size - 1
    start = first
    end = size - 1 if last is None else min(last, size - 1)
    if last is not None and last < start:
        return None
    if start >= size:
        return False
    return start, end


def _int(digits: str) -> int:
    """A range bound; one of thousands of digits is just 'larger than any file' (int()
    refuses strings over 4300 digits)."""
    return int(digits) if len(digits) <= 19 else 1 << 63



def _read_range(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    try:
        fh.seek(start)
        while length > 0:
            chunk = fh.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        fh.close()


def send(body: bytes | BinaryIO, size: int, mtime: int, content_type: str) -> HTTPResponse:
    """A 200/206/304/416 response for a body of `size` bytes last changed at `mtime`."""
    headers = {"Content-Type": content_type, "Accept-Ranges": "bytes",
               "Last-Modified": email.utils.formatdate(mtime, usegmt=True)}
    if not_modified_since(mtime):
        _close(body)
        return HTTPResponse(status=304, headers={"Last-Modified": headers["Last-Modified"]})
    status, start, length = 200, 0, size
    header = request.environ.get("HTTP_RANGE")
    if header and request.method != "HEAD":
        wanted = parse_range(header, size)
        if wanted is False:
            _close(body)
            headers["Content-Range"] = f"bytes */{size}"
            return HTTPResponse(status=416, headers=headers, body=b"")
        if isinstance(wanted, tuple):
            status, start, length = 206, wanted[0], wanted[1] - wanted[0] + 1
            headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        _close(body)
        return HTTPResponse(status=status, headers=headers, body=b"")
    if isinstance(body, bytes):
        return HTTPResponse(status=status, headers=headers, body=body[start:start + length])
    if "wsgi.file_wrapper" in request.environ:
        # bottle hands an open file to the server's file_wrapper: waitress then sends
        # Content-Length bytes from the current position on its own I/O thread (with
        # sendfile, web/sendfile.py), so a client that reads slowly (or never) holds no
        # worker thread.
        body.seek(start)
        return HTTPResponse(status=status, headers=headers, body=body)
    return HTTPResponse(status=status, headers=headers, body=_read_range(body, start, length))


def _close(body: bytes | BinaryIO) -> None:
    if not isinstance(body, bytes):
        body.close()


def send_file(path: Path, content_type: str = OCTET) -> HTTPResponse:
    """Serve a regular file (symlinks followed); NotFound if there is none."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (the response owns it: waitress closes it)
    except ValueError:  # a NUL in the name
        raise NotFound("Not found.") from None
    except OSError as exc:
        if exc.errno in _NO_SUCH_FILE:
            raise NotFound("Not found.") from None
        raise
    info = os.fstat(fh.fileno())
    if not stat.S_ISREG(info.st_mode):
        fh.close()
        raise NotFound("Not found.")
    return send(fh, info.st_size, int(info.st_mtime), content_type)
