"""The running server's lock on its data dir: `<data_dir>/server.lock`, held (flock) for
as long as the server runs; the kernel drops it when the process ends, even by SIGKILL.
`restore` and `check --repair` refuse a data dir whose lock is held."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from vieter_lite.errors import StartupError

NAME = "server.lock"


class DataDirLock:
    """An exclusive hold on a data dir (one server per data dir)."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; StartupError when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StartupError(f"the data dir {self.path.parent} is in use by another "
                               "vieter-lite server (it holds " + NAME + ")") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def held(data_dir: Path) -> bool:
    """Whether a running server holds the data dir's lock."""
    path = Path(data_dir) / NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
