"""The persistent build queue: queue, claim with a lease and a build token, renew, reap, finish."""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vieter_lite import names, stats
from vieter_lite.db import Database
from vieter_lite.errors import BadRequest, Conflict, Invalid, NotFound
from vieter_lite.lists import ListQuery
from vieter_lite.logs import BuildLogs
from vieter_lite.models import (
    BUILD_STATES,
    OPEN_STATES,
    TASK_NAMES,
    TASK_STATES,
    Build,
    BuildDetails,
    BuildSpec,
    Claim,
)
from vieter_lite.waiting import Seats, Wakeup

log = logging.getLogger(__name__)

LEASE_SECONDS = 120      # an agent renews well before this; a silent agent loses the build
MAX_EXPIRIES = 3         # the build fails after this many lost leases
MAX_RELEASES = 3         # an agent may hand a build back this often; the next time fails it
MAX_POLL = 100           # builds handed out by one poll at most
TIMEOUT_GRACE = 60       # past its timeout (+ grace) a running build is failed by the server
MAX_WAIT = 20            # seconds a poll may wait for a build by default (max_poll_wait)
MAX_WAITING = 64         # polls that wait at once; one more is answered at once, as without wait
RECHECK = 2.0            # a waiting poll looks again at least this often (and whether its
                         # agent hung up), also when no change woke it


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BuildQueue:
    """Builds from queued to finished; the only writer of build states."""

    def __init__(self, db: Database, logs: BuildLogs, base_image: str, default_timeout: int,
                 clock: Callable[[], float] = time.time, max_wait: int = MAX_WAIT):
        self.db = db
        self.logs = logs
        self.base_image = base_image
        self.default_timeout = default_timeout
        self.clock = clock
        # every change that may let a waiting poll claim a build bumps it: a build queued or
        # started, and any end of a running build (it held its target/arch)
        self.wakeup = Wakeup()
        self.waiting = Seats(MAX_WAITING)
        self.max_wait = max_wait  # seconds a poll may wait (max_poll_wait; 0: it never waits)
        self._on_end: builtins.list[Callable[[Build], None]] = []
        self._on_claim: builtins.list[Callable[[builtins.list[Build]], None]] = []

    def listen(self, on_end: Callable[[Build], None] | None = None,
               on_claim: Callable[[builtins.list[Build]], None] | None = None) -> None:
        """Call on_end(build) after a build ended (any way: finished, failed, cancelled,
        timed out, lost); on_claim(builds) after a poll handed builds out."""
        if on_end is not None:
            self._on_end.append(on_end)
        if on_claim is not None:
            self._on_claim.append(on_claim)

    def _tell(self, listeners: builtins.list[Callable[[Any], None]], what: Any) -> None:
        """A listener that fails is logged: the build's own change stands."""
        for listener in listeners:
            try:
                listener(what)
            except Exception:
                log.exception("a build listener failed")

    def _ended(self, build_id: int) -> None:
        """Tell the listeners of a build's end. Called in the transaction that ended it, so
        what they change (builds that waited for it) changes with it: no claim comes in
        between."""
        build = self.db.build(build_id)
        if build is not None and build.ended_at is not None:
            self._tell(self._on_end, build)

    def now(self) -> int:
        return int(self.clock())

    def queue(self, target_id: int, arch: str, force: bool = False,
              timeout: int | None = None) -> int:
        """Queue a build of a target now (one queued build per target/arch at a time)."""
        try:
            names.check_arch(arch)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        target = self.db.target(target_id)
        if target is None:
            raise NotFound("Unknown target id.")
        build_id, _ = self.db.queue_build(target, arch, force, self.now(), self.base_image,
                                          timeout or self.default_timeout)
        if not build_id:
            raise NotFound("Unknown target id.")
        self.wakeup.notify()
        return build_id

    def submit(self, spec: BuildSpec, sha256: str = "") -> Build:
        """Make a build from a spec: queued, or pending when it does not execute yet."""
        build = self.get(self.db.add_build(spec, self.now(), sha256))
        self.wakeup.notify()
        return build

    def start(self, build_id: int) -> Build:
        """A pending build (submitted without executing, or held for review) is queued."""
        build = self.get(build_id)
        if not self.db.start_build(build_id):
            raise Conflict(f"build {build_id} is {build.state}: only a pending build starts")
        self.wakeup.notify()
        return self.get(build_id)

    def cancel(self, build_id: int, who: str) -> Build:
        """End a pending, queued or running build as cancelled: a running build's token
        stops working at once, so its agent kills the container and publishes nothing."""
        build = self.get(build_id)
        with self.db.transaction():
            if build.status not in OPEN_STATES or \
                    not self.db.finish_build(build_id, "cancelled", None, self.now()):
                raise Conflict(f"build {build_id} is {build.state}: it cannot be cancelled")
            self.logs.note(build_id, f"vieter-lite: build cancelled by {who}")
            self._ended(build_id)
        self.log_changed(build_id)
        self.wakeup.notify()
        return self.get(build_id)

    def hold(self, build_id: int, reason: str, diff: str) -> Build:
        """A running build stops before building and waits as pending (for review)."""
        if not self.db.hold_build(build_id, reason, diff):
            raise Conflict(f"build {build_id} is not running")
        self.logs.note(build_id, f"vieter-lite: the build waits for {reason}: its source "
                                 "changed since the last successful build; start it to "
                                 "approve")
        self.log_changed(build_id)
        self.wakeup.notify()
        return self.get(build_id)

    def poll(self, arch: str, limit: int, runner: str = "",
             only: int | None = None, plain_only: bool = False,
             agent_id: int | None = None) -> list[Claim]:
        """Claim up to `limit` due builds of `arch`, each with a lease and a fresh token
        (`plain_only`: for an agent that knows only Vieter's jobs: no manifest's source, no
        review; `agent_id`: the registered agent polling, whose labels builds may need)."""
        if limit <= 0:
            return []
        limit = min(limit, MAX_POLL)
        tokens = [secrets.token_urlsafe(32) for _ in range(limit)]
        claimed = self.db.claim_builds(arch, limit, runner, self.now(), LEASE_SECONDS,
                                       (hash_token(t) for t in tokens), only,
                                       plain_only, agent_id)
        if claimed:
            self._tell(self._on_claim, claimed)
        return [Claim(build, token) for build, token in zip(claimed, tokens, strict=False)]

    def poll_waiting(self, arch: str, limit: int, wait: float,
                     gone: Callable[[], bool] = lambda: False, runner: str = "",
                     only: int | None = None, plain_only: bool = False,
                     agent_id: int | None = None,
                     clock: Callable[[], float] = time.monotonic
                     ) -> tuple[builtins.list[Claim], bool]:
        """poll(), and when nothing is waiting, wait up to `wait` seconds (at most max_wait)
        for a build to claim: woken by every change to the queue, looking again at least
        every RECHECK seconds, ending early when `gone()` says the agent hung up or the
        server stops. Returns the claims and whether it could wait (False: every seat of
        MAX_WAITING was taken, or the server stops; it answered at once)."""
        def claim() -> builtins.list[Claim]:
            return self.poll(arch, limit, runner, only, plain_only, agent_id)

        seen = self.wakeup.version  # read first: a change after it is not missed
        claims = claim()
        if claims or limit <= 0 or wait <= 0:
            return claims, True
        release = None if self.wakeup.stopping else self.waiting.take()
        if release is None:
            return claims, False
        try:
            deadline = clock() + min(wait, self.max_wait)
            while True:
                remaining = deadline - clock()
                if remaining <= 0 or self.wakeup.stopping or gone():
                    return [], True
                seen = self.wakeup.wait(seen, min(remaining, RECHECK))
                claims = claim()
                if claims:
                    return claims, True
        finally:
            release()

    def stop_waiting(self) -> None:
        """The server stops: waiting polls answer now (with nothing)."""
        self.wakeup.stop()

    def send_back(self, build_id: int, line: str) -> str:
        """A running build goes back to the queue to wait (for a dependency's build): not
        counted as a lost lease or a hand-back. Returns its new status (cancelled when a
        newer build of its target is queued)."""
        self.running(build_id)
        self.logs.note(build_id, line)
        with self.db.transaction():
            status = self.db.requeue(build_id, self.now(), counted=False, released=False)
            if status != "queued":
                self._ended(build_id)
        self.log_changed(build_id)
        self.wakeup.notify()
        return status

    def fail_waiting(self, build_id: int, line: str) -> bool:
        """A queued build fails without running (its dependency failed), with `line` in its
        log; False when it was no longer queued."""
        build = self.db.build(build_id)
        if build is None or build.status != "queued":
            return False
        self.logs.note(build_id, line)
        with self.db.transaction():
            if not self.db.finish_build(build_id, "failed", -1, self.now()):
                return False
            self._ended(build_id)
        self.log_changed(build_id)
        return True

    def list(self, statuses: list[str] | None = None, target: int | None = None,
             limit: int = 0, offset: int = 0) -> list[Build]:
        """Builds by id, optionally of some statuses and one target (limit 0 = all)."""
        for status in statuses or []:
            if status not in BUILD_STATES:
                raise BadRequest(f"unknown build status '{status}' (one of "
                                 f"{', '.join(BUILD_STATES)})")
        return self.db.builds(statuses or [], target, limit, offset)

    def add_finished(self, target_id: int, arch: str, started_at: int, ended_at: int,
                     exit_code: int, read: Callable[[int], bytes], length: int) -> int:
        """Record a build that ran elsewhere, with its whole log (Vieter's POST /logs)."""
        target = self.db.target(target_id)
        if target is None:
            raise Invalid("target", "unknown", "Unknown target.")
        tmp = self.logs.receive(read, length)
        try:
            build_id = self.db.add_finished_build(target.id, arch, started_at, ended_at,
                                                  exit_code, self.now(), target.repo)
            self.logs.adopt(tmp, build_id)
        finally:
            tmp.unlink(missing_ok=True)
        return build_id

    def started(self, build_id: int) -> Build:
        """A build that has a log: it started (a finished build is a v1 build log)."""
        build = self.db.build(build_id)
        if build is None or build.started_at is None:
            raise NotFound("Build log not found.")
        return build

    def log_path(self, build_id: int) -> Path:
        """The log file of a build, also the log so far of one handed back to the queue."""
        path = self.logs.path(build_id)
        if self.db.build(build_id) is None or not path.is_file():
            raise NotFound("Build log not found.")
        return path

    def delete_log(self, build_id: int) -> None:
        """Remove a build that ended, with its log (not a running one)."""
        build = self.started(build_id)
        if build.status == "running":
            raise Conflict("The build is still running.")
        self.logs.remove(build.id)
        self.db.delete_build(build.id)

    def page(self, query: ListQuery) -> tuple[builtins.list[Build], int]:
        """A page of builds (a Cloud Foundry list) and how many match in all."""
        return self.db.list_builds(query)

    def stats(self, query: stats.StatsQuery, reader: str | None = None
              ) -> builtins.list[stats.Bucket]:
        """Build statistics per bucket of the query's window, over the builds `reader` may
        read (None: every build)."""
        samples = self.db.build_samples(query.since, query.until, query.target_id, reader)
        return stats.summarise(samples, query)

    def details(self, build: Build) -> BuildDetails:
        """What /api/v2 shows besides the record: tags, labels, published packages."""
        return self.details_of([build])[build.id]

    def details_of(self, builds: Iterable[Build]) -> dict[int, BuildDetails]:
        """The details of a page of builds by id, read together."""
        builds = builtins.list(builds)
        details = self.db.build_details(b.id for b in builds)
        waiting = self.db.blockers(b.id for b in builds if b.status == "queued")
        for build_id, blockers in waiting.items():
            details[build_id] = dataclasses.replace(
                details[build_id], blocked_by=tuple(dict.fromkeys(x for x, _ in blockers)))
        return details

    def get(self, build_id: int) -> Build:
        build = self.db.build(build_id)
        if build is None:
            raise NotFound(f"build {build_id} not found")
        return build

    def running(self, build_id: int) -> Build:
        build = self.get(build_id)
        if build.status != "running":
            raise Conflict(f"build {build_id} is {build.status}, not running")
        return build

    def renew(self, build_id: int) -> Build:
        self.running(build_id)
        self.db.renew_lease(build_id, self.now(), LEASE_SECONDS)
        return self.get(build_id)

    def set_task(self, build_id: int, name: str, status: str) -> None:
        if name not in TASK_NAMES:
            raise BadRequest(f"unknown task '{name}' (one of {', '.join(TASK_NAMES)})")
        if status not in TASK_STATES:
            raise BadRequest(f"unknown task status '{status}' (one of {', '.join(TASK_STATES)})")
        self.running(build_id)
        self.db.set_task(build_id, name, status)
        if status == "running":
            # the task's part of the log begins here
            self.db.start_task_log(build_id, name, self.logs.size(build_id))

    def append_log(self, build_id: int, read: Callable[[int], bytes], length: int) -> int:
        """Append a chunk to a running build's log; returns the log's size. A log that
        was closed (DONE) takes nothing more."""
        if self.running(build_id).log_done:
            raise Conflict(f"the log of build {build_id} is DONE: nothing can be appended")
        # the record first: when sqlite cannot write (a full disk), nothing was appended
        # and the agent sends the same chunk again
        self.db.touch_log(build_id, self.now())
        size = self.logs.append(build_id, read, length)
        self.logs.changed()
        return size

    def log_changed(self, build_id: int) -> None:
        """The log's text or status changed: note when, and wake its followers."""
        self.db.touch_log(build_id, self.now())
        self.logs.changed()

    def finish(self, build_id: int, exit_code: int, started_at: int | None = None,
               ended_at: int | None = None, status: str | None = None) -> Build:
        """End a running build. Its times are the server's own record (claimed, now); the
        agent's are taken only within that window, so a report cannot rewrite history."""
        build = self.running(build_id)
        now = self.now()
        claimed = build.started_at if build.started_at is not None else now
        start = started_at if started_at is not None and claimed <= started_at <= now \
            else claimed
        end = ended_at if ended_at is not None and start <= ended_at <= now else now
        final = status or ("success" if exit_code == 0 else "failed")
        with self.db.transaction():
            self.db.finish_build(build.id, final, exit_code, end, start)
            self._ended(build.id)
        self.log_changed(build.id)
        self.wakeup.notify()
        return self.get(build_id)

    def release(self, build_id: int) -> Build:
        """An agent hands a running build back (it is stopping): queued again, not counted
        as a lost lease; after MAX_RELEASES hand-backs the next one fails the build."""
        build = self.running(build_id)
        if build.releases >= MAX_RELEASES:
            self.logs.note(build_id, f"vieter-lite: the build was handed back {MAX_RELEASES} "
                                     "times already; build failed")
            log.warning("build %d handed back more than %d times (runner %s); failed",
                        build_id, MAX_RELEASES, build.runner)
            with self.db.transaction():
                self.db.finish_build(build_id, "failed", -1, self.now())
                self._ended(build_id)
            self.log_changed(build_id)
            self.wakeup.notify()
            return self.get(build_id)
        self.logs.note(build_id, "vieter-lite: the agent stopped and handed the build back")
        self.db.requeue(build_id, self.now(), counted=False)
        self.log_changed(build_id)
        self.wakeup.notify()
        return self.get(build_id)

    def token_build(self, token: str) -> Build | None:
        """The running build a token belongs to, while it is valid: running, and not past
        its timeout plus the grace an agent has to report a killed build."""
        build = self.db.build_by_token(hash_token(token))
        if build is None or build.started_at is None:
            return None
        if self.now() > build.started_at + build.timeout + TIMEOUT_GRACE:
            return None
        return build

    def reap(self) -> builtins.list[int]:
        """Requeue builds whose lease expired (failing them after MAX_EXPIRIES), and fail
        builds past their timeout. Returns the ids touched."""
        now = self.now()
        touched: builtins.list[int] = []
        for build in self.db.expired_leases(now):
            touched.append(build.id)
            with self.db.transaction():
                if build.expiries + 1 >= MAX_EXPIRIES:
                    self.logs.note(build.id, f"vieter-lite: the agent stopped reporting "
                                             f"({MAX_EXPIRIES} leases lost); build failed")
                    self.db.lose_lease_for_good(build.id, now)
                else:
                    status = self.db.requeue(build.id, now)
                    log.warning("build %d lost its lease (runner %s); %s", build.id,
                                build.runner, "queued again" if status == "queued"
                                else "cancelled, a newer build is queued")
                self._ended(build.id)
        for build in self._timed_out(now):
            touched.append(build.id)
            self.logs.note(build.id, f"vieter-lite: build timed out after {build.timeout} s")
            with self.db.transaction():
                self.db.finish_build(build.id, "timeout", -1, now)
                self._ended(build.id)
        for build_id in touched:
            self.log_changed(build_id)
        if touched:
            self.wakeup.notify()
        return touched

    def _timed_out(self, now: int) -> builtins.list[Build]:
        return [b for b in self.db.running_builds()
                if b.started_at is not None and now > b.started_at + b.timeout + TIMEOUT_GRACE]
