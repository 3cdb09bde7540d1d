"""One streaming zstd reader over whichever decompressor this machine has.

The decompressors are tried in a fixed order.
"""

from __future__ import annotations

import importlib
import io
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

# The order in which decompressors are tried: the interpreter's own (Python >= 3.14), then
# the two C extension modules (pyzstd from PyPI; zstandard, also Debian's python3-zstandard),
# and last the `zstd` program that is installed wherever makepkg or pacman is.
MODULES = ("compression.zstd", "pyzstd", "zstandard")
PROGRAM = "zstd"
BACKENDS = (*MODULES, PROGRAM)
MISSING = ("this server cannot read .zst packages: no zstd decompressor found (tried the "
           "Python modules compression.zstd (Python >= 3.14), pyzstd and zstandard "
           "(Debian: python3-zstandard), and the zstd program on PATH)")
_BUFFER = 64 * 1024  # decompressed bytes read ahead, so small tar reads stay cheap
_STDERR_KEPT = 4096  # bytes of the program's error output quoted in a message


class ZstdError(OSError):
    """The compressed data is not valid zstd, or ends too early (any backend)."""


class ZstdUnavailable(Exception):
    """No backend exists on this machine."""

    def __init__(self) -> None:
        super().__init__(MISSING)


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _program() -> str | None:
    return shutil.which(PROGRAM)


def available() -> list[str]:
    """The backends usable here, in the order they are tried."""
    found = [name for name in MODULES if _module(name) is not None]
    return found + ([PROGRAM] if _program() else [])


def backend() -> str | None:
    """The backend open_zstd uses, or None when there is none."""
    for name in MODULES:
        if _module(name) is not None:
            return name
    return PROGRAM if _program() else None


class _ModuleReader(io.RawIOBase):
    """A backend module's stream, with its own exceptions turned into ZstdError."""

    def __init__(self, stream: Any, errors: tuple[type[BaseException], ...]):
        self._stream = stream
        self._errors = errors

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._stream.read(len(buffer))
        except self._errors as exc:
            raise ZstdError(f"zstd: {exc or type(exc).__name__}") from None
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class _ProgramReader(io.RawIOBase):
    """`zstd -dc` as a child process: its stdout read as it comes, killed and reaped on close."""

    def __init__(self, program: str, path: Path):
        # kept open until close(): the child writes into it while it runs
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            with open(path, "rb") as source:
                self._proc = subprocess.Popen([program, "-d", "-c", "-q"], stdin=source,
                                              stdout=subprocess.PIPE, stderr=self._stderr,
                                              bufsize=0)
        except BaseException:
            self._stderr.close()
            raise

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        stdout = self._proc.stdout
        assert isinstance(stdout, io.RawIOBase)  # bufsize=0: an unbuffered FileIO
        count = stdout.readinto(buffer)
        if not count:
            if self._proc.wait() != 0:
                self._stderr.seek(0)
                text = self._stderr.read(_STDERR_KEPT).decode("utf-8", "replace").strip()
                raise ZstdError(f"zstd: {text or f'exit status {self._proc.returncode}'}")
            return 0
        return count

    def close(self) -> None:
        if not self.closed:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._stderr.close()
        super().close()


def _open_module(name: str, module: Any, path: Path) -> io.RawIOBase:
    if name == "zstandard":
        # the returned reader owns the file (closefd=True) and closes it
        source = open(path, "rb")  # noqa: SIM115
        try:
            stream = module.ZstdDecompressor().stream_reader(source, read_across_frames=True,
                                                             closefd=True)
        except BaseException:
            source.close()
            raise
        return _ModuleReader(stream, (module.ZstdError, EOFError))
    # the returned reader owns the ZstdFile and closes it
    return _ModuleReader(module.ZstdFile(path, "rb"),  # noqa: SIM115
                         (module.ZstdError, EOFError))


def open_zstd(path: Path) -> BinaryIO:
    """A streaming reader of the decompressed bytes of `path`: read(n) returns at most n bytes.

    ZstdUnavailable when no backend exists; the reader raises ZstdError for bad data."""
    path = Path(path)
    for name in MODULES:
        module = _module(name)
        if module is not None:
            return io.BufferedReader(_open_module(name, module, path), _BUFFER)
    program = _program()
    if program is None:
        raise ZstdUnavailable()
    return io.BufferedReader(_ProgramReader(program, path), _BUFFER)
