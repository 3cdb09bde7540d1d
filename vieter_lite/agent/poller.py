"""The agent's side of the queue: it registers (name, archs, labels, version, slots, poll
period) with its own token, then polls as that agent; with a free slot it lets the server
wait for a build (wait=N) and polls again at once, so a queued build starts within moments
without polling every second. A server that knows no agents or does not wait is polled as
Vieter's is: anonymously, every polling_frequency."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from vieter_lite.client import Client, ClientError

log = logging.getLogger(__name__)

NOT_FOUND = 404


@dataclass(frozen=True)
class Identity:
    """What the agent registers as."""

    name: str
    arch: str
    labels: dict[str, str] = field(default_factory=dict)
    version: str = ""
    slots: int = 1
    poll_period: int = 30

    def body(self) -> dict[str, Any]:
        return {"name": self.name, "archs": [self.arch], "labels": dict(self.labels),
                "version": self.version, "slots": self.slots,
                "poll_period": self.poll_period}


class Poller:
    """Registers once (again when the server forgot the agent) and polls.

    `registered` is the agent's name on the server, or None: not yet, or (`anonymous`)
    never (the server knows no agents, or refused the registration: only builds that ask
    for no labels come then). `waits`: the server waited on the last poll, so the next
    one may follow at once."""

    def __init__(self, api: Client, identity: Identity):
        self.api = api
        self.identity = identity
        self.registered: str | None = None
        self.anonymous = False
        self.waits = False

    def register(self) -> bool:
        """Register (True), or go on anonymously after a refusal; a server that cannot be
        reached is tried again on the next poll."""
        try:
            agent = self.api.register_agent(self.identity.body())
        except ClientError as exc:
            if exc.status == NOT_FOUND:
                log.warning("the server knows no agents (%s): polling without registering; "
                            "builds that ask for agent labels will not come here", exc)
                self.anonymous = True
            elif exc.status:
                log.error("the server refused to register agent %s: %s; polling without "
                          "registering", self.identity.name, exc)
                self.anonymous = True
            else:
                log.warning("could not register agent %s: %s", self.identity.name, exc)
            return False
        self.registered = str(agent.get("name") or self.identity.name)
        log.warning("registered as agent %s (%s, labels %s)", self.registered,
                    self.identity.arch,
                    ",".join(f"{k}={v}" for k, v in sorted(self.identity.labels.items()))
                    or "none")
        return True

    def poll(self, free: int, stop: threading.Event) -> list[dict[str, Any]]:
        """Claim up to `free` builds (0: only be seen). With a free slot, the server may
        wait for one up to poll_period seconds; a stop ends the wait at once (what the
        server hands out after that goes back to the queue)."""
        # (a registration that could not reach the server is tried on the next poll)
        if self.registered is None and not self.anonymous and not self.register() \
                and not self.anonymous:
            self.waits = False
            return []
        wait = self.identity.poll_period if free > 0 else 0
        try:
            if wait:
                return self._interruptible(free, wait, stop)
            jobs, self.waits = self.api.poll_waiting(self.identity.arch, free,
                                                     self.registered)
            return jobs
        except ClientError as exc:
            self.waits = False
            if exc.status == NOT_FOUND and self.registered is not None:
                log.warning("the server forgot agent %s (%s): registering again",
                            self.registered, exc)
                self.registered = None
            else:
                log.warning("poll failed: %s", exc)
            return []

    def _interruptible(self, free: int, wait: int, stop: threading.Event
                       ) -> list[dict[str, Any]]:
        """The waiting poll in a thread of its own, so that a stop need not wait for it."""
        lock = threading.Lock()
        done = threading.Event()
        abandoned = False
        answer: list[Any] = []

        def run() -> None:
            try:
                result: Any = self.api.poll_waiting(self.identity.arch, free,
                                                    self.registered, wait)
            except ClientError as exc:
                result = exc
            with lock:
                if not abandoned:
                    answer.append(result)
                    done.set()
                    return
            if isinstance(result, tuple):  # claimed after the stop: hand them back
                for job in result[0]:
                    self._hand_back(job)

        threading.Thread(target=run, name="poll", daemon=True).start()
        while not done.wait(0.2):
            if stop.is_set():
                with lock:
                    if not done.is_set():
                        abandoned = True
                        self.waits = False
                        return []
        result = answer[0]
        if isinstance(result, ClientError):
            raise result
        jobs, self.waits = result
        return list(jobs)

    def _hand_back(self, job: dict[str, Any]) -> None:
        try:
            Client(self.api.address, str(job["token"])).release_build(int(job["build_id"]))
            log.warning("build %s came after the stop: handed back", job["build_id"])
        except (ClientError, KeyError, ValueError) as exc:
            log.warning("could not hand back build %s: %s", job.get("build_id"), exc)
