"""Notifications of ended builds: turns each ended build's triggers into stored deliveries
and sends them from one worker thread (with a small pool of sender threads), retrying
with backoff; lists each delivery's attempts."""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import queue
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable

from vieter_lite import __version__, notify, triggers
from vieter_lite.db import Database
from vieter_lite.errors import NotFound, full_disk
from vieter_lite.lists import ListQuery
from vieter_lite.models import Build, BuildDetails, Delivery, DeliveryAttempt, NewDelivery

log = logging.getLogger(__name__)

# Renders a build's webhook body: the JSON of GET /api/v2/builds/:id (given by web/).
Render = Callable[[Build, BuildDetails], bytes]

SENDERS = 4          # attempts at once: a receiver that hangs holds up one sender only
POLL = 5.0           # the longest the worker sleeps without being woken
BATCH = 100          # ended builds (and due deliveries) taken per round
USER_AGENT = f"vieter-lite/{__version__}"


def _shown(delivery: Delivery) -> str:
    """Where a delivery goes, for the log: a webhook's scheme and host only (its path or
    query may hold a token, as many services' webhook URLs do)."""
    if delivery.action != "webhook":
        return delivery.destination
    parts = urllib.parse.urlsplit(delivery.destination)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class Deliveries:
    """Deliveries of build notifications, from the build's end to delivered or failed."""

    def __init__(self, db: Database, base_url: str, smtp: notify.SmtpSettings,
                 render: Render | None = None,
                 delays: tuple[float, ...] = triggers.DEFAULT_RETRY_DELAYS,
                 timeout: float = notify.DEFAULT_TIMEOUT, senders: int = SENDERS,
                 clock: Callable[[], float] = time.time, poll: float = POLL):
        self.db = db
        self.base_url = base_url
        self.smtp = smtp
        self.render = render
        self.delays = delays
        self.timeout = timeout
        self.senders = senders
        self.clock = clock
        self.poll = poll
        self._wake = threading.Condition(threading.Lock())
        self._woken = False
        self._busy: set[int] = set()      # deliveries handed to a sender, not yet recorded

    # -- from ended builds to deliveries ---------------------------------------------------

    def wake(self) -> None:
        """Something changed (a build may have ended): look again now."""
        with self._wake:
            self._woken = True
            self._wake.notify_all()

    def prepare(self) -> int:
        """Turn every ended build not yet looked at into its deliveries (none when no
        trigger fires). Returns the deliveries made."""
        made = 0
        while ids := self.db.builds_to_notify(BATCH):
            for build_id in ids:
                made += self._prepare(build_id)
            if len(ids) < BATCH:
                break
        return made

    def _prepare(self, build_id: int) -> int:
        build = self.db.build(build_id)
        if build is None:
            return 0
        try:
            new = self._deliveries_of(build)
        except Exception:  # a bug must not hold every later build's notifications up
            log.exception("cannot prepare the notifications of build %d; skipped", build_id)
            new = []
        if not self.db.add_deliveries(build_id, new, self.clock()):
            return 0
        if new:
            log.info("build %d %s: %d notification(s) to send", build_id, build.state,
                     len(new))
        return len(new)

    def _deliveries_of(self, build: Build) -> list[NewDelivery]:
        target = self.db.target(build.target_id) if build.has_target else None
        fired = triggers.firing(build.triggers, target.triggers if target else "[]",
                                build.state)
        if not fired:
            return []
        details = self.db.build_details([build.id])[build.id]
        body: bytes | None = None
        new = []
        for trigger in fired:
            key = str(uuid.uuid4())
            if trigger["action"] == "webhook":
                if body is None:
                    if self.render is None:
                        raise RuntimeError("no renderer for webhook bodies")
                    body = self.render(build, details)
                payload = body
            else:
                payload = triggers.email_message(build, details.tags, self.base_url,
                                                 self.smtp.sender, trigger, key, self.clock())
            new.append(NewDelivery(uuid=key, action=trigger["action"],
                                   destination=triggers.destination(trigger),
                                   condition=trigger["condition"],
                                   spec=json.dumps(trigger, separators=(",", ":")),
                                   payload=payload))
        return new

    # -- attempts ------------------------------------------------------------------------

    def due(self, limit: int = BATCH) -> list[Delivery]:
        """Pending deliveries due now that no sender holds."""
        with self._wake:
            busy = set(self._busy)
        return self.db.due_deliveries(self.clock(), limit, busy)

    def send(self, delivery: Delivery) -> notify.Answer:
        """One attempt of a delivery (over the network; never on a request's thread)."""
        trigger = json.loads(delivery.spec)
        if delivery.action == "webhook":
            headers = triggers.webhook_headers(delivery.payload, delivery.uuid,
                                               trigger.get("secret", ""), USER_AGENT)
            return notify.post_webhook(trigger["url"], delivery.payload, headers, self.timeout)
        return notify.send_email(self.smtp, triggers.recipients(trigger), delivery.payload,
                                 self.timeout)

    def attempt(self, delivery: Delivery) -> str:
        """Send once and record the attempt; returns the delivery's status after it."""
        answer = self.send(delivery)
        now = self.clock()
        status, delay = triggers.after_attempt(answer.outcome, delivery.attempts + 1,
                                               self.delays)
        self.db.record_attempt(delivery.id, int(now), answer.status, answer.response,
                               answer.error, status, None if delay is None else now + delay)
        level = logging.INFO if status != "failed" else logging.WARNING
        log.log(level, "%s to %s for build %d: %s%s", delivery.action, _shown(delivery),
                delivery.build_id, answer.status if answer.status is not None else answer.error,
                f"; again in {delay:g} s" if delay is not None else f" ({status})")
        return status

    # -- the worker --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """The worker thread: make deliveries of ended builds and hand due ones to the
        senders, until stop. An attempt under way at stop is not recorded: it is sent
        again after a restart (the same X-Vieter-Delivery), never lost."""
        work: queue.Queue[Delivery] = queue.Queue()
        for n in range(self.senders):
            threading.Thread(target=self._sender, args=(work, stop), daemon=True,
                             name=f"deliveries-{n}").start()
        while not stop.is_set():
            try:
                self.prepare()
                due = self.due()
            except Exception as exc:
                # a full disk (sqlite cannot write): tried again after the next wait
                full = full_disk(exc, "preparing notifications")
                if full is None:
                    raise
                log.error("deliveries: %s", full.message)
                due = []
            for delivery in due:
                with self._wake:
                    self._busy.add(delivery.id)
                work.put(delivery)
            with self._wake:
                if not self._woken and not stop.is_set():
                    self._wake.wait(self._sleep_time())
                self._woken = False

    def _sleep_time(self) -> float:
        soonest = self.db.next_delivery_at()
        if soonest is None:
            return self.poll
        return min(self.poll, max(0.0, soonest - self.clock()))

    def _sender(self, work: queue.Queue[Delivery], stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                delivery = work.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.attempt(delivery)
            except Exception:
                if not stop.is_set():  # after stop, the database may be closed already
                    log.exception("delivery %d failed unexpectedly", delivery.id)
            finally:
                with self._wake:
                    self._busy.discard(delivery.id)
                    self._woken = True
                    self._wake.notify_all()

    # -- reading -------------------------------------------------------------------------

    def attempts(self, build_id: int, query: ListQuery
                 ) -> tuple[builtins.list[DeliveryAttempt], int]:
        """A page of the attempts to deliver a build's notifications, and how many."""
        if self.db.build(build_id) is None:
            raise NotFound(f"build {build_id} not found")
        scoped = dataclasses.replace(query, filters=(*query.filters,
                                                     ("build", (str(build_id),))))
        return self.db.list_attempts(scoped)
