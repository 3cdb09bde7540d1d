"""Polls that wait for a build: a version of the queue that every change to it bumps (and
wakes the waiting polls), and the seats of the polls waiting at once, each of which borrows
a worker thread from the HTTP server while it waits."""

from __future__ import annotations

import threading
from collections.abc import Callable

from vieter_lite.buildlogs import Capacity


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


class Seats:
    """At most `limit` polls wait at once; each borrows capacity (a worker thread) while it
    waits, so the HTTP server's own threads stay free for everything else."""

    def __init__(self, limit: int):
        self.limit = limit
        self.taken = 0
        self.capacity: Capacity | None = None
        self._lock = threading.Lock()

    def take(self) -> Callable[[], None] | None:
        """A seat and its release (idempotent), or None when every seat is taken."""
        with self._lock:
            if self.taken >= self.limit:
                return None
            self.taken += 1
            capacity = self.capacity
        if capacity is not None:
            capacity.grow()
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self.taken -= 1
            if capacity is not None:
                capacity.shrink()

        return release
