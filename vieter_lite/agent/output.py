"""The packages a build produced.

They are taken out of the tar stream of the container's output dir, with limits.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# A split package rarely has more than a few dozen parts; anything far above is not makepkg.
MAX_PACKAGES = 100
# The server's default max_upload_size: a larger package would be refused anyway.
MAX_PACKAGE_BYTES = 2 * 1024 ** 3
# The whole tar stream read from the container (headers included), so a build cannot fill
# the agent's disk with files it was never going to publish.
MAX_OUTPUT_BYTES = 8 * 1024 ** 3

# What makepkg names a package: name-ver-rel-arch.pkg.tar[.ext], no path, no signature.
PACKAGE_FILE = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@._+-]*\.pkg\.tar(\.[a-z0-9]+)?")


class OutputError(Exception):
    """The build's output is not a set of packages the agent will publish (one-line reason)."""


class LimitedStream(io.RawIOBase):
    """A file over an iterable of byte chunks that stops past `limit` bytes."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._rest = b""
        self._limit = limit
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = chunk
            self.read_bytes += len(chunk)
            if self.read_bytes > self._limit:
                raise OutputError(f"the build's output is larger than {self._limit} bytes")
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def is_package_name(name: str) -> bool:
    return bool(PACKAGE_FILE.fullmatch(name)) and not name.endswith(".sig")


def extract_packages(chunks: Iterable[bytes], dest: Path, max_packages: int = MAX_PACKAGES,
                     max_package_bytes: int = MAX_PACKAGE_BYTES,
                     max_output_bytes: int = MAX_OUTPUT_BYTES) -> list[Path]:
    """Write the package files found at the top of a directory's tar stream to `dest`.

    Only regular files named like a package are taken (no signatures, links, devices or
    files in subdirectories); their names are checked, never used as paths as they are.
    Returns the files written, sorted by name; OutputError when a limit is passed.
    """
    found: list[Path] = []
    stream = io.BufferedReader(LimitedStream(chunks, max_output_bytes), 1024 * 1024)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) != 2 or not member.isreg() or not is_package_name(parts[1]):
                    continue
                if len(found) >= max_packages:
                    raise OutputError(f"the build produced more than {max_packages} packages")
                if member.size > max_package_bytes:
                    raise OutputError(f"{parts[1]} is larger than {max_package_bytes} bytes")
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                target = dest / parts[1]
                with open(target, "xb") as out:
                    while block := source.read(1024 * 1024):
                        out.write(block)
                found.append(target)
    except tarfile.TarError as exc:
        raise OutputError(f"cannot read the build's output: {exc}") from None
    except FileExistsError as exc:
        raise OutputError(f"the build's output names {Path(exc.filename).name} twice") from None
    return sorted(found)
