"""Copying a request body of known length to a file: short bodies are a 400, data is synced."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from vieter_lite.errors import BadRequest

CHUNK = 256 * 1024


def copy_exact(read: Callable[[int], bytes], length: int, out: BinaryIO,
               on_chunk: Callable[[bytes], object] | None = None) -> None:
    """Write exactly `length` bytes from `read` to `out` and fsync it; BadRequest when the
    body ends early. `on_chunk` sees every chunk (e.g. a hash's update)."""
    remaining = length
    while remaining:
        chunk = read(min(CHUNK, remaining))
        if not chunk:
            raise BadRequest(f"the body ended after {length - remaining} of {length} bytes")
        if on_chunk is not None:
            on_chunk(chunk)
        write_all(out, chunk)
        remaining -= len(chunk)
    out.flush()
    os.fsync(out.fileno())


def write_all(out: BinaryIO, data: bytes) -> None:
    """Write all of `data`: an unbuffered file may take part of it (a disk that fills up
    takes what fits, then the next write fails with ENOSPC)."""
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written if written is not None else len(view):]
