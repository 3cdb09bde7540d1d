"""Polls that wait for a build: a version of the queue that every change to it bumps (and
wakes the waiting polls), and the seats of the polls waiting at once, each of which borrows
a worker thread from the HTTP server while it waits."""

from __future__ import annotations

import threading
from collections.abc import Callable

from vieter_lite.buildlogs import Capacity
from vieter_lite.wakeup import Wakeup

__all__ = ["Seats", "Wakeup"]


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
