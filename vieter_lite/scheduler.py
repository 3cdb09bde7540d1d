"""Turns targets and cron schedules into queued builds; removes old build logs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from vieter_lite import cron
from vieter_lite.db import Database
from vieter_lite.errors import VieterError, full_disk
from vieter_lite.logs import BuildLogs
from vieter_lite.models import Target
from vieter_lite.queue import BuildQueue

log = logging.getLogger(__name__)

TICK = 30.0            # the longest the loop sleeps between looks at the clock
RETENTION_BATCH = 500


def next_run(expression: str, now: float) -> int:
    """The next time (unix s) a cron expression fires after `now`, in local time."""
    moment = cron.next_after(expression, datetime.fromtimestamp(now).astimezone())
    return int(moment.timestamp())


class Scheduler:
    """Keeps each target/arch's next run time; due ones become queued builds."""

    def __init__(self, db: Database, queue: BuildQueue, logs: BuildLogs, global_schedule: str,
                 max_log_age: int = 0, log_removal_schedule: str = "0 0",
                 clock: Callable[[], float] = time.time):
        self.db = db
        self.queue = queue
        self.logs = logs
        self.global_schedule = global_schedule
        self.max_log_age = max_log_age
        self.log_removal_schedule = log_removal_schedule
        self.clock = clock

    def schedule_of(self, target: Target) -> str:
        return target.schedule or self.global_schedule

    def plan(self, target: Target) -> tuple[str, bool, dict[str, int | None]]:
        """(the schedule the target runs on, whether it is the global one, {arch: next run})."""
        return (self.schedule_of(target), not target.schedule,
                {a.value: a.next_run for a in target.arch})

    def next_run_of(self, schedule: str) -> int:
        """When a target with this schedule (already validated) runs next."""
        return next_run(schedule or self.global_schedule, self.clock())

    def next_runs(self, schedule: str, archs: list[str]) -> dict[str, int | None]:
        """{arch: next run} for a new or edited target."""
        due = self.next_run_of(schedule)
        return {arch: due for arch in archs}

    def tick(self) -> list[int]:
        """Queue a build for every due target/arch (once, however many runs were missed)
        and move its next run past now. Returns the queued build ids."""
        now = self.clock()
        queued = []
        for target, arch in self.db.due_target_archs(int(now)):
            try:
                upcoming = next_run(self.schedule_of(target), now)
            except cron.CronError as exc:  # stored before validation existed; keep serving
                log.error("target %d has an invalid schedule: %s", target.id, exc)
                self.db.set_next_run(arch.id, None)
                continue
            try:
                queued.append(self.queue.queue(target.id, arch.value))
            except VieterError as exc:  # e.g. the target was deleted a moment ago
                log.warning("not queueing target %d/%s: %s", target.id, arch.value, exc)
                continue
            self.db.set_next_run(arch.id, upcoming)
        return queued

    def arm_all(self) -> None:
        """Give every target/arch without a next run time one (start-up)."""
        now = self.clock()
        for target, arch in self.db.all_target_archs():
            if arch.next_run is None:
                try:
                    self.db.set_next_run(arch.id, next_run(self.schedule_of(target), now))
                except cron.CronError as exc:
                    log.error("target %d has an invalid schedule: %s", target.id, exc)

    def remove_old_logs(self) -> int:
        """Delete finished builds (records and log files) older than max_log_age days."""
        if self.max_log_age <= 0:
            return 0
        threshold = int(self.clock()) - self.max_log_age * 86400
        removed = 0
        while True:
            ids = self.db.finished_builds_started_before(threshold, RETENTION_BATCH)
            for build_id in ids:
                self.logs.remove(build_id)
                if self.db.delete_build(build_id):
                    removed += 1
            if len(ids) < RETENTION_BATCH:
                break
        if removed:
            log.info("removed %d build logs started before %d", removed, threshold)
        return removed

    def housekeeping(self) -> int:
        """On the log removal schedule: old build logs go, and the source bundles no review
        compares with any more; then sqlite's statistics are gathered again, so that the
        query planner follows a database that grew (or shrank) since the server started.
        Returns the build logs removed."""
        removed = self.remove_old_logs()
        self.db.prune_sources()
        self.db.analyze()
        return removed

    def run(self, stop: threading.Event) -> None:
        """The scheduler thread: due builds, lost leases, housekeeping, until stop."""
        self.arm_all()
        self.remove_old_logs()
        next_cleanup = next_run(self.log_removal_schedule, self.clock())
        while not stop.is_set():
            try:
                self.tick()
                self.queue.reap()
                if self.clock() >= next_cleanup:
                    self.housekeeping()
                    next_cleanup = next_run(self.log_removal_schedule, self.clock())
            except Exception as exc:
                # a full disk (sqlite cannot write): the same work is done at the next
                # tick, once there is room; the server goes on serving
                full = full_disk(exc, "scheduling builds")
                if full is None:
                    raise
                log.error("scheduler: %s", full.message)
            stop.wait(self._sleep_time(next_cleanup))

    def _sleep_time(self, next_cleanup: int) -> float:
        now = self.clock()
        upcoming = [next_cleanup, now + TICK]
        soonest = self.db.soonest_next_run()
        if soonest is not None:
            upcoming.append(soonest)
        return max(0.5, min(upcoming) - now)
