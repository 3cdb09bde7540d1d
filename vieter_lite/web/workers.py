"""Lending worker threads: a request that lasts (a log follower) adds one thread to
waitress's pool for its lifetime, so the pool keeps its `threads` free for the others."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from waitress.task import ThreadedTaskDispatcher


class ThreadLender:
    """Grows waitress's dispatcher by one thread per borrower and shrinks it after. Once
    closed (the server stops and shuts the pool down), it no longer touches the pool."""

    def __init__(self, dispatcher: ThreadedTaskDispatcher, threads: int):
        self.dispatcher = dispatcher
        self.base = threads
        self.lent = 0
        self._closed = False
        self._lock = threading.Lock()

    def grow(self) -> None:
        with self._lock:
            self.lent += 1
            self._resize()

    def shrink(self) -> None:
        with self._lock:
            self.lent -= 1
            self._resize()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _resize(self) -> None:
        if not self._closed:
            # an idle thread leaves when the pool shrinks; the borrower's own thread
            # finishes its request first, whichever thread that is
            self.dispatcher.set_thread_count(self.base + self.lent)


def hung_up(environ: dict[str, Any]) -> Callable[[], bool]:
    """Whether the client of a long response went away. waitress reads nothing from a
    connection while its request runs, so it notices a hang-up only when a write fails;
    this peeks at the socket (an end of file: gone) without taking any of its bytes."""
    check = environ.get("waitress.client_disconnected")
    sock = getattr(getattr(check, "__self__", None), "socket", None)
    if check is None:
        return lambda: False

    def gone() -> bool:
        if check():
            return True
        if sock is None:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return gone
