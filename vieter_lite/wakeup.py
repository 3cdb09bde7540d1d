"""A counter of changes that waiters sleep on: the build logs' followers and the polls that
wait for a build each use one."""

from __future__ import annotations

import threading


class Wakeup:
    """A counter of changes: waiters note the version, look, and sleep until it moves."""

    def __init__(self) -> None:
        self._version = 0
        self._stopping = False
        self._changed = threading.Condition(threading.Lock())

    @property
    def version(self) -> int:
        with self._changed:
            return self._version

    @property
    def stopping(self) -> bool:
        return self._stopping

    def notify(self) -> None:
        """Something a waiting poll may claim could have changed: wake every waiter."""
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until the version differs from `seen` (or stop(), or the timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != seen or self._stopping, timeout)
            return self._version

    def stop(self) -> None:
        """The server stops: waiters end now, and no new one waits."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
