"""A running build's line to the server: its lease, and the server's word that it is over.

The server ends a build on its own when it is cancelled, passes its timeout or loses its
lease; from then on the build token does not resolve, and every call with it answers
401/403/404/409. The agent takes any of those as "stop": the build's container is killed
at once, nothing is published, and finish is not called. A publish the repository's rules
refuse answers 403 or 409 too, while the build still runs: after a refused publish the
agent asks the server about the build before it stops.

Noticing it: a read of the build (GET /api/v1/builds/:id) every WATCH seconds, while the
lease is renewed every LEASE_RENEW seconds as before. A renewal would answer the same
question, but it writes the builds table (an UPDATE and a synchronous commit, under the
database's one writer); the read takes no write lock and syncs nothing, so watching every
few seconds adds no writes to a server on a slow disk (bench/agent_watch.py compares the
two). The log uploads (every second while there is output) and task reports notice it
as well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from vieter_lite.client import Client, ClientError

log = logging.getLogger(__name__)

WATCH = 3.0          # seconds between checks that the server still runs the build
LEASE_RENEW = 30.0   # seconds between lease renewals (the server's lease is 120 s)
GONE = frozenset({401, 403, 404, 409})  # the build is no longer this token's running build


class Stopped(Exception):
    """The server ended the build: stop it where it is."""


def gone(exc: ClientError) -> bool:
    """True when an answer means the build is over on the server."""
    return exc.status in GONE


class BuildControl:
    """Watches one build; stop() kills its current container. The build thread registers
    each container it starts (register(), from podman's on_create) and calls check()
    between its steps."""

    def __init__(self, api: Client, build_id: int, kill: Callable[[str], object],
                 watch: float = WATCH, renew: float = LEASE_RENEW,
                 clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.build_id = build_id
        self._kill = kill
        self.watch = watch
        self.renew = renew
        self.clock = clock
        self.reason = ""
        self.stopped = threading.Event()
        self._container: str | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch-{build_id}",
                                        daemon=True)

    def start(self) -> BuildControl:
        self._thread.start()
        return self

    def stop(self, reason: str) -> None:
        """The server ended the build: note why and kill the running container, if any."""
        with self._lock:
            if self._closed or self.stopped.is_set():
                return
            self.reason = reason
            container = self._container
            log.warning("build %d: the server ended it (%s); stopping it", self.build_id, reason)
            if container is not None:
                try:
                    self._kill(container)
                except Exception as exc:  # noqa: BLE001 - the build thread stops anyway
                    log.error("build %d: could not kill container %s: %s", self.build_id,
                              container[:12], exc)
            self.stopped.set()  # (register() waits for the lock: no container slips by)

    def stop_if_gone(self, exc: ClientError) -> None:
        """stop() when a call's answer says the build is over."""
        if gone(exc):
            self.stop(f"the server answered {exc.status}: {exc}")

    def stop_if_ended(self, exc: ClientError) -> None:
        """After a call that only the build's token makes was refused with one of the
        answers that may mean the build is over: ask the server about the build, and
        stop() when it is over. A publish refused by the repository's rules (a name
        another target owns, a downgrade, a version past a rollback's hold: 403/409) is
        refused while the build still runs; the build then goes on to fail with the
        refusal in its log."""
        if not gone(exc):
            return
        try:
            build = self.api.get_build(self.build_id)
        except ClientError as again:
            if gone(again):
                self.stop(f"the server answered {again.status}: {again}")
            return
        status = build.get("status") if isinstance(build, dict) else None
        if status not in (None, "running"):
            self.stop(f"the build is {status} on the server")

    def register(self, container_id: str) -> None:
        """A container of the build was created; Stopped if the build is over already
        (the container then never starts)."""
        with self._lock:
            if self.stopped.is_set():
                raise Stopped(self.reason)
            self._container = container_id

    def release(self) -> None:
        """The registered container has ended."""
        with self._lock:
            self._container = None

    def check(self) -> None:
        """Stopped once the server ended the build."""
        if self.stopped.is_set():
            raise Stopped(self.reason)

    def close(self) -> None:
        """The build is over here: no more watching, stop() does nothing."""
        with self._lock:
            self._closed = True
        self._done.set()

    def _watch(self) -> None:
        last_renew = self.clock()
        while not self._done.wait(self.watch):
            try:
                if self.clock() - last_renew >= self.renew:
                    last_renew = self.clock()
                    build = self.api.renew_lease(self.build_id)
                else:
                    build = self.api.get_build(self.build_id)
            except ClientError as exc:
                if gone(exc):
                    self.stop(f"the server answered {exc.status}: {exc}")
                    return
                log.warning("build %d: cannot reach the server: %s", self.build_id, exc)
                continue
            status = build.get("status") if isinstance(build, dict) else None
            if status not in (None, "running"):
                self.stop(f"the build is {status} on the server")
                return
