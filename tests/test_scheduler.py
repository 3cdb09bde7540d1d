"""Scheduler: next run times, due targets becoming queued builds, log retention and the
scheduler thread. Real sqlite files, a fake clock, no sleeping."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from vieter_lite import scheduler as scheduler_module
from vieter_lite.db import Database
from vieter_lite.logs import BuildLogs
from vieter_lite.queue import LEASE_SECONDS, BuildQueue
from vieter_lite.scheduler import Scheduler, next_run

T0 = 1_700_000_010  # 10 s into a minute
MINUTE = T0 - T0 % 60
DAY = 86400
GLOBAL = "0 3"


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Env:
    def __init__(self, tmp_path: Path, global_schedule: str = GLOBAL, max_log_age: int = 0):
        self.tmp_path = tmp_path
        self.clock = Clock()
        self.logs = BuildLogs(tmp_path / "logs")
        self.global_schedule = global_schedule
        self.max_log_age = max_log_age
        self.open()

    def open(self) -> None:
        self.db = Database(self.tmp_path / "v.sqlite")
        self.queue = BuildQueue(self.db, self.logs, "archlinux:base-devel", 3600,
                                clock=self.clock)
        self.sched = Scheduler(self.db, self.queue, self.logs, self.global_schedule,
                               max_log_age=self.max_log_age, clock=self.clock)

    def reopen(self) -> None:
        self.db.close()
        self.open()

    def target(self, schedule: str = "", archs=("x86_64",), next_runs=None) -> int:
        runs = next_runs if next_runs is not None else {a: None for a in archs}
        return self.db.add_target({"kind": "git", "url": "https://x/y.git", "repo": "bur",
                                   "schedule": schedule}, runs)

    def next_runs(self, target_id: int) -> dict[str, int | None]:
        return {a.value: a.next_run for a in self.db.target(target_id).arch}

    def finished(self, target_id: int, started_at: int, log: bytes | None = b"log\n") -> int:
        build_id = self.db.add_finished_build(target_id, "x86_64", started_at, started_at + 60,
                                              0, started_at)
        if log is not None:
            self.logs.append(build_id, io.BytesIO(log).read, len(log))
        return build_id


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e
    e.db.close()


# -- next_run / next_runs ---------------------------------------------------------------

def test_next_run_is_the_next_matching_minute_strictly_after_now() -> None:
    assert next_run("* *", T0) == MINUTE + 60
    assert next_run("* *", MINUTE) == MINUTE + 60  # a matching minute gives the next one
    assert next_run("* *", MINUTE + 59.9) == MINUTE + 60
    daily = next_run(GLOBAL, T0)
    assert T0 < daily <= T0 + DAY
    # a day later (give or take an hour, if the local zone changes DST in between)
    assert next_run(GLOBAL, daily) - daily in (DAY - 3600, DAY, DAY + 3600)


def test_next_runs_for_every_arch(env: Env) -> None:
    assert env.sched.next_runs("*/15 *", ["x86_64", "aarch64"]) == {
        "x86_64": next_run("*/15 *", T0), "aarch64": next_run("*/15 *", T0)}
    # an empty schedule means the global one
    assert env.sched.next_runs("", ["x86_64", "armv7h"]) == {
        "x86_64": next_run(GLOBAL, T0), "armv7h": next_run(GLOBAL, T0)}
    assert env.sched.next_runs("* *", []) == {}


def test_next_runs_feed_add_target_and_make_it_due(env: Env) -> None:
    tid = env.target("* *", next_runs=env.sched.next_runs("* *", ["x86_64", "aarch64"]))
    assert env.next_runs(tid) == {"x86_64": MINUTE + 60, "aarch64": MINUTE + 60}
    env.clock.now = MINUTE + 60
    ids = env.sched.tick()
    assert len(ids) == 2
    assert sorted(env.db.build(i).arch for i in ids) == ["aarch64", "x86_64"]
    assert env.db.queue_depths() == {"x86_64": 1, "aarch64": 1}


# -- arm_all and tick -------------------------------------------------------------------

def test_every_minute_target_is_due_at_the_next_minute(env: Env) -> None:
    tid = env.target("* *")
    assert env.next_runs(tid) == {"x86_64": None}
    assert env.sched.tick() == []  # unarmed: never due
    env.sched.arm_all()
    assert env.next_runs(tid) == {"x86_64": MINUTE + 60}
    assert env.sched.tick() == []
    env.clock.now = MINUTE + 59
    assert env.sched.tick() == []
    assert env.db.build_counts() == {}

    env.clock.now = MINUTE + 60
    ids = env.sched.tick()
    assert len(ids) == 1
    build = env.db.build(ids[0])
    assert (build.target_id, build.arch, build.status, build.force) == \
        (tid, "x86_64", "queued", False)
    assert build.created_at == MINUTE + 60
    assert env.next_runs(tid) == {"x86_64": MINUTE + 120}
    assert env.next_runs(tid)["x86_64"] > env.clock.now
    assert env.sched.tick() == []  # not due again within the same minute
    assert env.db.build_counts() == {"queued": 1}


def test_arm_all_keeps_existing_next_runs(env: Env) -> None:
    armed = env.target("* *", next_runs={"x86_64": T0 + 5000})
    fresh = env.target("*/5 *")
    env.sched.arm_all()
    assert env.next_runs(armed) == {"x86_64": T0 + 5000}
    assert env.next_runs(fresh) == {"x86_64": next_run("*/5 *", T0)}


def test_many_missed_runs_queue_one_build(env: Env) -> None:
    tid = env.target("* *")
    env.sched.arm_all()
    env.clock.now = T0 + 3 * 3600  # 180 runs missed
    ids = env.sched.tick()
    assert len(ids) == 1
    assert env.db.build_counts() == {"queued": 1}
    assert env.next_runs(tid) == {"x86_64": next_run("* *", env.clock.now)}
    assert env.next_runs(tid)["x86_64"] > env.clock.now
    assert env.sched.tick() == []
    assert env.db.build_counts() == {"queued": 1}


def test_a_target_with_a_queued_build_is_not_queued_twice(env: Env) -> None:
    tid = env.target("* *")
    env.sched.arm_all()
    manual = env.queue.queue(tid, "x86_64", force=True)
    env.clock.now = MINUTE + 60
    assert env.sched.tick() == [manual]
    assert env.db.build_counts() == {"queued": 1}
    assert env.db.build(manual).force is True  # the manual force is kept
    # still queued a minute later: still one build
    env.clock.now = MINUTE + 120
    assert env.sched.tick() == [manual]
    assert env.db.build_counts() == {"queued": 1}


def test_a_running_build_gets_one_follow_up_that_waits(env: Env) -> None:
    env.target("* *")
    env.sched.arm_all()
    env.clock.now = MINUTE + 60
    [first] = env.sched.tick()
    env.queue.poll("x86_64", 5)
    env.clock.now = MINUTE + 120
    [second] = env.sched.tick()
    assert second != first
    assert env.queue.poll("x86_64", 5) == []  # one at a time per target/arch
    env.queue.renew(first)
    env.clock.now = MINUTE + 180
    assert env.sched.tick() == [second]
    assert env.db.build_counts() == {"running": 1, "queued": 1}


def test_global_schedule_applies_to_targets_without_a_schedule(tmp_path: Path) -> None:
    env = Env(tmp_path, global_schedule="30 */2")
    plain = env.target("")
    own = env.target("*/10 *")
    env.sched.arm_all()
    assert env.next_runs(plain) == {"x86_64": next_run("30 */2", T0)}
    assert env.next_runs(own) == {"x86_64": next_run("*/10 *", T0)}
    due = env.next_runs(plain)["x86_64"]
    env.clock.now = due
    ids = env.sched.tick()
    expected = {plain} | ({own} if next_run("*/10 *", T0) <= due else set())
    assert sorted(env.db.build(i).target_id for i in ids) == sorted(expected)
    assert env.next_runs(plain) == {"x86_64": next_run("30 */2", due)}
    assert env.next_runs(plain)["x86_64"] > due
    env.db.close()


def test_tick_queues_every_due_target_and_arch(env: Env) -> None:
    a = env.target("* *", archs=("x86_64", "aarch64"))
    b = env.target("")  # global: not due within the next minutes
    c = env.target("*/2 *")
    env.sched.arm_all()
    env.clock.now = MINUTE + 120
    ids = env.sched.tick()
    queued = sorted((env.db.build(i).target_id, env.db.build(i).arch) for i in ids)
    expected = [(a, "aarch64"), (a, "x86_64")]
    if next_run("*/2 *", T0) <= MINUTE + 120:
        expected.append((c, "x86_64"))
    assert queued == sorted(expected)
    assert env.next_runs(b) == {"x86_64": next_run(GLOBAL, T0)}


def test_an_invalid_stored_schedule_is_skipped_not_fatal(env: Env) -> None:
    bad = env.target("not a schedule", next_runs={"x86_64": T0 - 10})
    unarmed_bad = env.target("99 99")
    good = env.target("* *", next_runs={"x86_64": T0 - 10})
    env.sched.arm_all()  # logs, does not raise
    assert env.next_runs(unarmed_bad) == {"x86_64": None}
    ids = env.sched.tick()
    assert [env.db.build(i).target_id for i in ids] == [good]
    assert env.next_runs(bad) == {"x86_64": None}  # disarmed, never due again
    assert env.sched.tick() == []


def test_next_run_and_missed_runs_survive_a_restart(env: Env) -> None:
    tid = env.target("* *")
    env.sched.arm_all()
    armed = env.next_runs(tid)["x86_64"]
    env.reopen()
    env.clock.now = T0 + 3600  # the server was down for an hour
    env.sched.arm_all()
    assert env.next_runs(tid) == {"x86_64": armed}  # not recomputed from "now"
    assert len(env.sched.tick()) == 1  # the missed run is caught up once
    assert env.next_runs(tid)["x86_64"] == next_run("* *", env.clock.now)


def test_remove_target_drops_queued_builds_but_keeps_finished_ones(env: Env) -> None:
    tid = env.target("* *", archs=("x86_64", "aarch64"))
    other = env.target("* *")
    done = env.queue.queue(tid, "x86_64")
    env.queue.poll("x86_64", 1)
    env.queue.finish(done, 1)
    waiting_x86 = env.queue.queue(tid, "x86_64")
    waiting_arm = env.queue.queue(tid, "aarch64")
    other_build = env.queue.queue(other, "x86_64")
    env.sched.arm_all()

    assert env.db.remove_target(tid) is True
    assert env.db.target(tid) is None
    assert env.db.build(waiting_x86) is None and env.db.build(waiting_arm) is None
    kept = env.db.build(done)
    assert (kept.status, kept.exit_code) == ("failed", 1)
    assert env.db.build(other_build).status == "queued"
    # its archs are gone: nothing is scheduled for it any more
    env.clock.now = T0 + 3600
    ids = env.sched.tick()
    assert [env.db.build(i).target_id for i in ids] == [other]
    assert env.db.remove_target(tid) is False


def test_tick_survives_a_target_deleted_while_it_runs(env: Env) -> None:
    """BUG: tick() lets NotFound from queue() escape when a target is deleted between
    due_target_archs() and queue() (a DELETE from a web thread). The exception ends
    Scheduler.run and the supervisor then stops the whole server."""
    doomed = env.target("* *")
    survivor = env.target("* *")
    env.sched.arm_all()
    real_due = env.db.due_target_archs

    def due_then_deleted(now: int):
        due = real_due(now)
        env.db.remove_target(doomed)  # the web thread wins the race
        return due

    env.db.due_target_archs = due_then_deleted  # type: ignore[method-assign]
    env.clock.now = MINUTE + 60
    ids = env.sched.tick()
    assert [env.db.build(i).target_id for i in ids] == [survivor]


# -- retention --------------------------------------------------------------------------

def test_remove_old_logs_by_age(tmp_path: Path) -> None:
    env = Env(tmp_path, max_log_age=1)
    tid = env.target()
    old = env.finished(tid, T0 - 2 * DAY)
    older_no_file = env.finished(tid, T0 - 3 * DAY, log=None)
    just_over = env.finished(tid, T0 - DAY - 1)
    at_threshold = env.finished(tid, T0 - DAY)
    recent = env.finished(tid, T0 - 3600)
    # a build that started long ago and still runs (agent renewing) is never removed
    env.clock.now = T0 - 5 * DAY
    running = env.queue.queue(tid, "x86_64")
    env.queue.poll("x86_64", 1)
    env.queue.append_log(running, io.BytesIO(b"still going").read, 11)
    env.clock.now = T0 - 4 * DAY
    old_queued = env.queue.queue(env.target(), "x86_64")  # queued, never started
    env.clock.now = T0

    assert env.sched.remove_old_logs() == 3
    for gone in (old, older_no_file, just_over):
        assert env.db.build(gone) is None
        assert not env.logs.path(gone).exists()
    for kept in (at_threshold, recent):
        assert env.db.build(kept) is not None
        assert env.logs.path(kept).read_bytes() == b"log\n"
    assert env.db.build(running).status == "running"
    assert env.logs.path(running).read_bytes() == b"still going"
    assert env.db.build(old_queued).status == "queued"
    assert env.sched.remove_old_logs() == 0
    env.db.close()


def test_remove_old_logs_in_several_batches(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_module, "RETENTION_BATCH", 2)
    env = Env(tmp_path, max_log_age=2)
    tid = env.target()
    old = [env.finished(tid, T0 - 3 * DAY - i) for i in range(5)]
    new = env.finished(tid, T0 - DAY)
    assert env.sched.remove_old_logs() == 5
    assert all(env.db.build(i) is None and not env.logs.path(i).exists() for i in old)
    assert env.db.build(new) is not None
    env.db.close()


def test_max_log_age_zero_removes_nothing(env: Env) -> None:
    tid = env.target()
    ancient = env.finished(tid, T0 - 1000 * DAY)
    assert env.sched.max_log_age == 0
    assert env.sched.remove_old_logs() == 0
    assert env.db.build(ancient) is not None
    assert env.logs.path(ancient).read_bytes() == b"log\n"


# -- the scheduler thread ---------------------------------------------------------------

def test_run_works_and_stops_quickly(tmp_path: Path) -> None:
    env = Env(tmp_path, max_log_age=1)
    tid = env.target("* *", next_runs={"x86_64": T0 - 60})  # due
    unarmed = env.target("*/5 *")
    old_log = env.finished(tid, T0 - 2 * DAY)
    lost = env.queue.queue(env.target(), "x86_64")
    env.clock.now = T0 - LEASE_SECONDS - 10
    env.queue.poll("x86_64", 5)  # claims `lost`; the due target is not queued yet
    env.clock.now = T0

    ticked = threading.Event()
    real_tick = env.sched.tick

    def tick():
        result = real_tick()
        ticked.set()
        return result

    env.sched.tick = tick  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=env.sched.run, args=(stop,), daemon=True)
    thread.start()
    assert ticked.wait(2), "the scheduler loop did not tick"
    stop.set()
    thread.join(2)
    assert not thread.is_alive(), "the scheduler thread did not stop within 2 s"

    assert env.next_runs(unarmed) == {"x86_64": next_run("*/5 *", T0)}  # arm_all ran
    assert env.db.build(old_log) is None  # retention ran at start-up
    assert env.db.build(lost).status == "queued" and env.db.build(lost).expiries == 1  # reap
    assert env.db.queue_depths() == {"x86_64": 2}  # tick queued the due target
    assert env.next_runs(tid) == {"x86_64": MINUTE + 60}
    env.db.close()


def test_run_returns_at_once_when_already_stopped(env: Env) -> None:
    tid = env.target("* *", next_runs={"x86_64": T0 - 60})
    stop = threading.Event()
    stop.set()
    thread = threading.Thread(target=env.sched.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(2)
    assert not thread.is_alive()
    assert env.db.build_counts() == {}  # the loop body never ran
    assert env.next_runs(tid) == {"x86_64": T0 - 60}


def test_sleep_time_is_bounded(env: Env) -> None:
    assert env.sched._sleep_time(T0 + 10_000) == scheduler_module.TICK
    assert env.sched._sleep_time(T0 + 5) == 5
    env.target("* *", next_runs={"x86_64": T0 + 3})
    assert env.sched._sleep_time(T0 + 10_000) == 3
    env.target("* *", next_runs={"x86_64": T0 - 100})  # overdue: still a short pause
    assert env.sched._sleep_time(T0 + 10_000) == 0.5


def test_housekeeping_gathers_statistics_of_a_database_that_grew(tmp_path: Path) -> None:
    """Opened empty (no statistics), then filled: the planner learns of the builds at the
    next housekeeping, without a restart."""
    env = Env(tmp_path, max_log_age=1)
    tid = env.target()
    for i in range(20):
        env.finished(tid, T0 - i * 60, log=None)
    old = env.finished(tid, T0 - 3 * DAY, log=None)

    def stats() -> dict[str, str]:
        return {r["idx"]: r["stat"] for r in env.db._all(
            "SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'builds'")}
    assert stats() == {}
    assert env.sched.housekeeping() == 1
    assert env.db.build(old) is None
    assert stats()["builds_by_target"].split()[0] == "20"
    env.db.close()
