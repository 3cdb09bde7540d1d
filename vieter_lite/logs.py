"""Build log files: one file per build under <data_dir>/logs, appended while it runs; and
the wake-up of log followers whenever a log (or a build's state) changes."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from vieter_lite.errors import PayloadTooLarge
from vieter_lite.streams import copy_exact
from vieter_lite.wakeup import Wakeup

MAX_LOG_SIZE = 256 * 1024 * 1024  # a log longer than this is refused (413)
_SCAN = 64 * 1024


def tail_start(read_at: Callable[[int, int], bytes], size: int, lines: int) -> int:
    """Where the last `lines` lines of a text of `size` bytes begin (a last line without
    its newline counts as a line). `read_at(start, length)` reads the text."""
    if lines <= 0:
        return size
    if size == 0:
        return 0
    # the newline that ends the text ends its last line; it begins none
    pos = size - 1 if read_at(size - 1, 1) == b"\n" else size
    remaining = lines
    while pos > 0:
        start = max(0, pos - _SCAN)
        block = read_at(start, pos - start)
        cut = len(block)
        while (cut := block.rfind(b"\n", 0, cut)) >= 0:
            remaining -= 1
            if remaining == 0:
                return start + cut + 1
        pos = start
    return 0


class BuildLogs:
    """Where build logs live; appends are serialised within the process. Every change
    bumps `version` and wakes the threads waiting in wait(); a rewrite (replace, cut,
    remove) also bumps the log's generation, so a follower knows its offset is void."""

    def __init__(self, logs_dir: Path):
        self.dir = Path(logs_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._wakeup = Wakeup()
        self._generations: dict[int, int] = {}
        self._newlines: dict[int, tuple[int, int, int]] = {}  # id -> (generation, size, count)
        self._listeners: list[Callable[[], None]] = []

    def path(self, build_id: int) -> Path:
        return self.dir / f"{int(build_id)}.log"

    # -- waking followers ---------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._wakeup.version

    @property
    def stopping(self) -> bool:
        return self._wakeup.stopping

    def changed(self) -> None:
        """A log or a build's state changed: wake whoever waits (and every listener)."""
        self._wakeup.notify()
        for listener in self._listeners:
            listener()

    def listen(self, listener: Callable[[], None]) -> None:
        """Call `listener` (quick, never blocking) on every change, e.g. a build's end."""
        self._listeners.append(listener)

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until the version differs from `seen` (or stop(), or the timeout)."""
        return self._wakeup.wait(seen, timeout)

    def stop(self) -> None:
        """The server stops: waiting followers return now, and do not wait again."""
        self._wakeup.stop()

    def generation(self, build_id: int) -> int:
        return self._generations.get(build_id, 0)

    def _rewritten(self, build_id: int) -> None:
        self._generations[build_id] = self._generations.get(build_id, 0) + 1
        self._newlines.pop(build_id, None)

    # -- reading ------------------------------------------------------------------------

    def size(self, build_id: int) -> int:
        try:
            return self.path(build_id).stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, build_id: int, start: int, length: int) -> bytes:
        """Up to `length` bytes from `start` (fewer at the end; none without a log)."""
        try:
            with open(self.path(build_id), "rb") as fh:
                fh.seek(start)
                return fh.read(max(0, length))
        except FileNotFoundError:
            return b""

    def line_count(self, build_id: int) -> int:
        """Lines of the whole log; counts only what was appended since the last call."""
        with self._lock:
            size = self.size(build_id)
            generation = self.generation(build_id)
            seen_generation, seen_size, count = self._newlines.get(build_id, (generation, 0, 0))
            if seen_generation != generation or seen_size > size:
                seen_size, count = 0, 0
            pos = seen_size
            while pos < size:
                block = self.read(build_id, pos, min(_SCAN * 16, size - pos))
                if not block:
                    break
                count += block.count(b"\n")
                pos += len(block)
            self._newlines[build_id] = (generation, pos, count)
        if pos == 0:
            return 0
        return count + (0 if self.read(build_id, pos - 1, 1) == b"\n" else 1)

    # -- writing ------------------------------------------------------------------------

    def append(self, build_id: int, read: Callable[[int], bytes], length: int) -> int:
        """Stream `length` bytes onto the build's log; returns the new size. A failed
        upload (a body cut short, a full disk) leaves the log as it was."""
        try:
            # unbuffered: what a full disk refused is never written later (by a flush at
            # close, after the log was cut back)
            with self._lock, open(self.path(build_id), "ab", buffering=0) as out:
                start = out.tell()
                if start + length > MAX_LOG_SIZE:
                    raise PayloadTooLarge(f"a build log may not exceed {MAX_LOG_SIZE} bytes")
                try:
                    copy_exact(read, length, out)
                except BaseException:
                    out.truncate(start)
                    raise
                return out.tell()
        finally:
            self.changed()

    def replace(self, build_id: int, data: bytes) -> None:
        """The log's whole text becomes `data`."""
        if len(data) > MAX_LOG_SIZE:
            raise PayloadTooLarge(f"a build log may not exceed {MAX_LOG_SIZE} bytes")
        with self._lock:
            tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
            try:
                tmp.write_bytes(data)
                os.replace(tmp, self.path(build_id))
            finally:
                tmp.unlink(missing_ok=True)
            self._rewritten(build_id)
        self.changed()

    def keep_last_lines(self, build_id: int, lines: int) -> int:
        """Keep only the log's last `lines` lines; returns how many bytes went."""
        with self._lock:
            path = self.path(build_id)
            if not path.is_file():
                return 0
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size

                def read_at(start: int, length: int) -> bytes:
                    fh.seek(start)
                    return fh.read(length)

                cut = tail_start(read_at, size, lines)
                if cut == 0:
                    return 0
                tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
                try:
                    with open(tmp, "wb") as out:
                        fh.seek(cut)
                        while block := fh.read(_SCAN * 16):
                            out.write(block)
                    os.replace(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
            self._rewritten(build_id)
        self.changed()
        return cut

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
        with self._lock:
            os.replace(tmp, self.path(build_id))
            self._rewritten(build_id)
        self.changed()

    def remove_temp_files(self) -> None:
        for leftover in self.dir.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)

    def note(self, build_id: int, line: str) -> None:
        """Add a line of the server's own to a log (timeouts, lost agents)."""
        with self._lock, open(self.path(build_id), "ab") as out:
            out.write(b"\n" + line.encode() + b"\n")
        self.changed()

    def remove(self, build_id: int) -> None:
        with self._lock:
            self.path(build_id).unlink(missing_ok=True)
            self._rewritten(build_id)
        self.changed()
