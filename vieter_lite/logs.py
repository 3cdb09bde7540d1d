"""Build log files: one file per build under <data_dir>/logs, appended while it runs."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from vieter_lite.errors import PayloadTooLarge
from vieter_lite.streams import copy_exact

MAX_LOG_SIZE = 256 * 1024 * 1024  # a log longer than this is refused (413)


class BuildLogs:
    """Where build logs live; appends are serialised within the process."""

    def __init__(self, logs_dir: Path):
        self.dir = Path(logs_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path(self, build_id: int) -> Path:
        return self.dir / f"{int(build_id)}.log"

    def append(self, build_id: int, read: Callable[[int], bytes], length: int) -> int:
        """Stream `length` bytes onto the build's log; returns the new size. A failed
        upload leaves the log as it was."""
        with self._lock, open(self.path(build_id), "ab") as out:
            start = out.tell()
            if start + length > MAX_LOG_SIZE:
                raise PayloadTooLarge(f"a build log may not exceed {MAX_LOG_SIZE} bytes")
            try:
                copy_exact(read, length, out)
            except BaseException:
                out.truncate(start)
                raise
            return out.tell()

    def receive(self, read: Callable[[int], bytes], length: int) -> Path:
        """Stream a whole log into a temp file; adopt() then gives it to a build."""
        if length > MAX_LOG_SIZE:
            raise PayloadTooLarge(f"a build log may not exceed {MAX_LOG_SIZE} bytes")
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as out:
                copy_exact(read, length, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def adopt(self, tmp: Path, build_id: int) -> None:
        os.replace(tmp, self.path(build_id))

    def remove_temp_files(self) -> None:
        for leftover in self.dir.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)

    def note(self, build_id: int, line: str) -> None:
        """Add a line of the server's own to a log (timeouts, lost agents)."""
        with self._lock, open(self.path(build_id), "ab") as out:
            out.write(b"\n" + line.encode() + b"\n")

    def remove(self, build_id: int) -> None:
        self.path(build_id).unlink(missing_ok=True)
