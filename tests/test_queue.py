"""BuildQueue: queueing, claiming with a lease and a build token, renewing, reaping,
finishing, and surviving a restart. Real sqlite files, a fake clock, no sleeping."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from vieter_lite.db import Database
from vieter_lite.errors import BadRequest, Conflict, NotFound
from vieter_lite.logs import BuildLogs
from vieter_lite.models import TASK_NAMES
from vieter_lite.queue import LEASE_SECONDS, MAX_EXPIRIES, MAX_POLL, MAX_RELEASES, TIMEOUT_GRACE, BuildQueue, hash_token
from vieter_lite.web.v1.shapes import job_json

T0 = 1_700_000_010  # 10 s into a minute
BASE_IMAGE = "archlinux:base-devel"
TIMEOUT = 3600
SEED_FIELDS = ("target_id", "kind", "url", "branch", "path", "repo", "base_image", "force",
               "timeout")


def _jobs(claims):
    """Claims as the jobs /api/v1/jobs/poll hands out."""
    return [job_json(claim.build, claim.token) for claim in claims]


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Env:
    """A Database on a file in tmp_path, its BuildLogs, and a BuildQueue on a fake clock."""

    def __init__(self, tmp_path: Path, timeout: int = TIMEOUT):
        self.tmp_path = tmp_path
        self.timeout = timeout
        self.clock = Clock()
        self.logs = BuildLogs(tmp_path / "logs")
        self.open()

    def open(self) -> None:
        self.db = Database(self.tmp_path / "v.sqlite")
        self.queue = BuildQueue(self.db, self.logs, BASE_IMAGE, self.timeout, clock=self.clock)

    def reopen(self) -> None:
        self.db.close()
        self.open()

    def target(self, archs=("x86_64",), **fields) -> int:
        spec = {"kind": "git", "url": "https://x/y.git", "repo": "bur"}
        spec.update(fields)
        return self.db.add_target(spec, {a: None for a in archs})

    def tasks(self, build_id: int) -> dict[str, str]:
        return dict(self.db.build(build_id).tasks)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e
    e.db.close()


def reader(data: bytes):
    return io.BytesIO(data).read


# -- queue ------------------------------------------------------------------------------

def test_queue_returns_a_new_queued_build(env: Env) -> None:
    tid = env.target(branch="main", path="pkg/foo")
    build_id = env.queue.queue(tid, "x86_64")
    assert isinstance(build_id, int) and build_id > 0
    build = env.db.build(build_id)
    assert build.status == "queued"
    assert (build.target_id, build.arch, build.force) == (tid, "x86_64", False)
    assert build.created_at == T0
    assert (build.kind, build.url, build.branch, build.path, build.repo) == \
        ("git", "https://x/y.git", "main", "pkg/foo", "bur")
    assert (build.base_image, build.timeout) == (BASE_IMAGE, TIMEOUT)
    assert build.started_at is None and build.lease_expires is None and build.expiries == 0
    assert build.tasks == tuple((name, "pending") for name in TASK_NAMES)


def test_queue_twice_while_queued_gives_the_same_build_and_ors_force(env: Env) -> None:
    tid = env.target()
    first = env.queue.queue(tid, "x86_64")
    assert env.queue.queue(tid, "x86_64") == first
    assert env.db.build(first).force is False
    assert env.queue.queue(tid, "x86_64", force=True) == first
    assert env.db.build(first).force is True
    assert env.queue.queue(tid, "x86_64", force=False) == first
    assert env.db.build(first).force is True  # ORed in, never cleared
    assert env.db.build_counts() == {"queued": 1}


def test_queue_other_arch_or_target_is_a_separate_build(env: Env) -> None:
    a = env.target(archs=("x86_64", "aarch64"))
    b = env.target()
    ids = {env.queue.queue(a, "x86_64"), env.queue.queue(a, "aarch64"),
           env.queue.queue(b, "x86_64")}
    assert len(ids) == 3
    assert env.db.queue_depths() == {"x86_64": 2, "aarch64": 1}


def test_queue_unknown_target_is_not_found(env: Env) -> None:
    with pytest.raises(NotFound):
        env.queue.queue(999, "x86_64")
    assert env.db.build_counts() == {}


@pytest.mark.parametrize("arch", ["", "../x", "x86 64", "x86_64/..", "a" * 33, "x;y"])
def test_queue_unsafe_arch_is_bad_request(env: Env, arch: str) -> None:
    tid = env.target()
    with pytest.raises(BadRequest):
        env.queue.queue(tid, arch)
    assert env.db.build_counts() == {}


# -- poll -------------------------------------------------------------------------------

def test_poll_hands_out_a_job_with_seed_fields_lease_and_token(env: Env) -> None:
    tid = env.target(branch="dev", path="sub")
    build_id = env.queue.queue(tid, "x86_64", force=True)
    env.clock.now = T0 + 5
    jobs = _jobs(env.queue.poll("x86_64", 5, runner="agent-1"))
    assert len(jobs) == 1
    job = jobs[0]
    assert {k: job[k] for k in SEED_FIELDS} == {
        "target_id": tid, "kind": "git", "url": "https://x/y.git", "branch": "dev",
        "path": "sub", "repo": "bur", "base_image": BASE_IMAGE, "force": True,
        "timeout": TIMEOUT}
    assert job["build_id"] == build_id
    assert job["arch"] == "x86_64"
    assert isinstance(job["token"], str) and len(job["token"]) >= 32
    build = env.db.build(build_id)
    assert build.status == "running"
    assert build.started_at == T0 + 5
    assert build.lease_expires == T0 + 5 + LEASE_SECONDS
    assert build.runner == "agent-1"
    # an immediate re-poll gets nothing
    assert _jobs(env.queue.poll("x86_64", 5)) == []


def test_poll_zero_or_negative_max_returns_nothing(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    assert _jobs(env.queue.poll("x86_64", 0)) == []
    assert _jobs(env.queue.poll("x86_64", -3)) == []
    assert env.db.build(build_id).status == "queued"


def test_poll_respects_max_and_hands_out_oldest_first(env: Env) -> None:
    ids = [env.queue.queue(env.target(), "x86_64") for _ in range(3)]
    first = _jobs(env.queue.poll("x86_64", 2))
    assert [j["build_id"] for j in first] == ids[:2]
    second = _jobs(env.queue.poll("x86_64", 2))
    assert [j["build_id"] for j in second] == ids[2:]
    assert _jobs(env.queue.poll("x86_64", 2)) == []


def test_poll_is_capped_at_max_poll(env: Env) -> None:
    for _ in range(MAX_POLL + 3):
        env.queue.queue(env.target(), "x86_64")
    assert len(_jobs(env.queue.poll("x86_64", MAX_POLL + 50))) == MAX_POLL
    assert len(_jobs(env.queue.poll("x86_64", MAX_POLL + 50))) == 3


def test_poll_one_build_at_a_time_per_target_arch(env: Env) -> None:
    tid = env.target()
    first = env.queue.queue(tid, "x86_64")
    assert [j["build_id"] for j in _jobs(env.queue.poll("x86_64", 5))] == [first]
    # queued while the first runs: a new build, not handed out yet
    second = env.queue.queue(tid, "x86_64")
    assert second != first
    assert env.db.build(second).status == "queued"
    assert _jobs(env.queue.poll("x86_64", 5)) == []
    env.queue.finish(first, 0)
    jobs = _jobs(env.queue.poll("x86_64", 5))
    assert [j["build_id"] for j in jobs] == [second]


def test_poll_does_not_return_other_archs(env: Env) -> None:
    tid = env.target(archs=("x86_64", "aarch64"))
    x86 = env.queue.queue(tid, "x86_64")
    arm = env.queue.queue(tid, "aarch64")
    assert _jobs(env.queue.poll("riscv64", 5)) == []
    assert [j["build_id"] for j in _jobs(env.queue.poll("x86_64", 5))] == [x86]
    assert env.db.build(arm).status == "queued"
    # the running x86_64 build does not block the aarch64 one
    jobs = _jobs(env.queue.poll("aarch64", 5))
    assert [(j["build_id"], j["arch"]) for j in jobs] == [(arm, "aarch64")]


def test_tokens_differ_per_build_and_only_hashes_are_stored(env: Env) -> None:
    for _ in range(4):
        env.queue.queue(env.target(), "x86_64")
    jobs = _jobs(env.queue.poll("x86_64", 4))
    tokens = [j["token"] for j in jobs]
    assert len(set(tokens)) == 4
    for job in jobs:
        assert env.queue.token_build(job["token"]).id == job["build_id"]
        assert env.db.build_by_token(hash_token(job["token"])).id == job["build_id"]
        assert env.db.build_by_token(job["token"]) is None  # the plain token is not stored


def test_token_build_valid_while_running_then_none_after_finish(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    token = _jobs(env.queue.poll("x86_64", 1))[0]["token"]
    assert env.queue.token_build(token).id == build_id
    env.clock.now = T0 + TIMEOUT  # exactly at the timeout: still valid
    env.queue.renew(build_id)
    assert env.queue.token_build(token).id == build_id
    env.queue.finish(build_id, 0)
    assert env.queue.token_build(token) is None


def test_token_build_none_after_timeout(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    token = _jobs(env.queue.poll("x86_64", 1))[0]["token"]
    env.clock.now = T0 + TIMEOUT + TIMEOUT_GRACE  # an agent may still report a killed build
    assert env.queue.token_build(token).id == build_id
    env.clock.now = T0 + TIMEOUT + TIMEOUT_GRACE + 1
    assert env.queue.token_build(token) is None
    assert env.db.build(build_id).status == "running"  # reap decides, not token_build


@pytest.mark.parametrize("garbage", ["", "x", "not-a-token", "A" * 43, hash_token("x")])
def test_token_build_none_for_garbage(env: Env, garbage: str) -> None:
    env.queue.queue(env.target(), "x86_64")
    _jobs(env.queue.poll("x86_64", 1))
    assert env.queue.token_build(garbage) is None


def test_concurrent_polls_from_two_connections_never_share_a_build(tmp_path: Path) -> None:
    env = Env(tmp_path)
    ids = {env.queue.queue(env.target(), "x86_64") for _ in range(40)}
    other_db = Database(tmp_path / "v.sqlite")
    queues = [env.queue, BuildQueue(other_db, env.logs, BASE_IMAGE, TIMEOUT, clock=env.clock)]
    got: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        barrier.wait()
        while True:
            jobs = _jobs(queues[i].poll("x86_64", 3))
            if not jobs:
                return
            got[i] += [j["build_id"] for j in jobs]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    handed = got[0] + got[1]
    assert sorted(handed) == sorted(ids)  # each exactly once
    other_db.close()
    env.db.close()


# -- leases -----------------------------------------------------------------------------

def test_renew_extends_the_lease(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    _jobs(env.queue.poll("x86_64", 1))
    env.clock.now = T0 + 100
    renewed = env.queue.renew(build_id)
    assert renewed.lease_expires == T0 + 100 + LEASE_SECONDS
    env.clock.now = T0 + LEASE_SECONDS + 50  # past the first lease, within the renewed one
    assert env.queue.reap() == []
    assert env.db.build(build_id).status == "running"
    env.clock.now = T0 + 100 + LEASE_SECONDS + 1
    assert env.queue.reap() == [build_id]


def test_renew_errors(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    with pytest.raises(Conflict):
        env.queue.renew(build_id)  # queued, not running
    with pytest.raises(NotFound):
        env.queue.renew(12345)


def test_reap_requeues_an_expired_lease(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    old_token = _jobs(env.queue.poll("x86_64", 1, runner="a1"))[0]["token"]
    env.queue.set_task(build_id, "setup", "success")
    env.queue.set_task(build_id, "source", "running")
    env.clock.now = T0 + LEASE_SECONDS  # the lease's last second: not expired yet
    assert env.queue.reap() == []
    env.clock.now = T0 + LEASE_SECONDS + 1
    assert env.queue.reap() == [build_id]
    build = env.db.build(build_id)
    assert build.status == "queued"
    assert build.expiries == 1
    assert build.runner == "" and build.started_at is None and build.lease_expires is None
    assert env.tasks(build_id) == {name: "pending" for name in TASK_NAMES}
    assert env.queue.token_build(old_token) is None
    assert env.queue.reap() == []  # nothing left to reap
    # and it can be polled again, with a new token
    env.clock.now = T0 + 200
    jobs = _jobs(env.queue.poll("x86_64", 1, runner="a2"))
    assert [j["build_id"] for j in jobs] == [build_id]
    assert jobs[0]["token"] != old_token
    build = env.db.build(build_id)
    assert (build.status, build.runner, build.started_at) == ("running", "a2", T0 + 200)
    assert build.lease_expires == T0 + 200 + LEASE_SECONDS
    assert env.queue.token_build(jobs[0]["token"]).id == build_id
    assert env.queue.token_build(old_token) is None


def test_reap_fails_the_build_after_max_expiries(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    for lost in range(1, MAX_EXPIRIES + 1):
        jobs = _jobs(env.queue.poll("x86_64", 1))
        assert [j["build_id"] for j in jobs] == [build_id]
        env.clock.now += LEASE_SECONDS + 1
        assert env.queue.reap() == [build_id]
        build = env.db.build(build_id)
        if lost < MAX_EXPIRIES:
            assert (build.status, build.expiries) == ("queued", lost)
    assert build.status == "failed"
    assert build.exit_code == -1
    assert build.ended_at == env.clock.now
    assert build.lease_expires is None
    assert _jobs(env.queue.poll("x86_64", 1)) == []
    text = env.logs.path(build_id).read_text()
    assert "stopped reporting" in text and f"{MAX_EXPIRIES} leases lost" in text
    assert env.tasks(build_id) == {name: "skipped" for name in TASK_NAMES}
    assert build.expiries == MAX_EXPIRIES


def test_a_lost_lease_is_cancelled_when_a_newer_build_is_queued(env: Env) -> None:
    target = env.target()
    running = env.queue.queue(target, "x86_64")
    _jobs(env.queue.poll("x86_64", 1))
    newer = env.queue.queue(target, "x86_64", force=True)
    assert newer != running
    env.clock.now += LEASE_SECONDS + 1
    assert env.queue.reap() == [running]
    lost = env.db.build(running)
    assert (lost.status, lost.exit_code, lost.expiries) == ("cancelled", -1, 1)
    jobs = _jobs(env.queue.poll("x86_64", 5))
    assert [(j["build_id"], j["force"]) for j in jobs] == [(newer, True)]


def test_reap_ends_a_build_past_its_timeout_as_timeout(tmp_path: Path) -> None:
    env = Env(tmp_path, timeout=100)
    build_id = env.queue.queue(env.target(), "x86_64")
    _jobs(env.queue.poll("x86_64", 1))
    env.queue.append_log(build_id, reader(b"building...\n"), 12)
    env.queue.set_task(build_id, "build", "running")
    env.clock.now = T0 + 100
    env.queue.renew(build_id)  # the agent is alive, the build is just slow
    env.clock.now = T0 + 100 + TIMEOUT_GRACE  # within the grace
    assert env.queue.reap() == []
    env.clock.now = T0 + 100 + TIMEOUT_GRACE + 1
    assert env.queue.reap() == [build_id]
    build = env.db.build(build_id)
    assert (build.status, build.exit_code, build.ended_at) == ("timeout", -1, env.clock.now)
    text = env.logs.path(build_id).read_text()
    assert text.startswith("building...\n")
    assert "timed out" in text and "100 s" in text
    assert env.tasks(build_id) == {"setup": "skipped", "source": "skipped", "build": "failed",
                                   "publish": "skipped"}
    assert env.queue.reap() == []
    env.db.close()


# -- finish, tasks, logs ----------------------------------------------------------------

def test_finish_zero_is_success(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    token = _jobs(env.queue.poll("x86_64", 1))[0]["token"]
    for name in TASK_NAMES:
        env.queue.set_task(build_id, name, "success")
    env.clock.now = T0 + 42
    build = env.queue.finish(build_id, 0)
    assert (build.status, build.exit_code, build.ended_at) == ("success", 0, T0 + 42)
    assert build.started_at == T0 and build.lease_expires is None and build.log_done
    assert env.tasks(build_id) == {name: "success" for name in TASK_NAMES}
    assert env.queue.token_build(token) is None


def test_finish_nonzero_is_failed_and_pending_tasks_are_skipped(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    _jobs(env.queue.poll("x86_64", 1))
    env.queue.set_task(build_id, "setup", "success")
    env.queue.set_task(build_id, "source", "failed")
    build = env.queue.finish(build_id, 2)
    assert (build.status, build.exit_code) == ("failed", 2)
    assert env.tasks(build_id) == {"setup": "success", "source": "failed", "build": "skipped",
                                   "publish": "skipped"}


def test_finish_takes_the_agents_times_within_the_claim_window(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    _jobs(env.queue.poll("x86_64", 1))
    env.clock.now = T0 + 100
    build = env.queue.finish(build_id, 0, started_at=T0 + 5, ended_at=T0 + 90)
    assert (build.started_at, build.ended_at) == (T0 + 5, T0 + 90)


@pytest.mark.parametrize("start, end, expected", [
    (None, None, (T0, T0 + 100)),             # nothing sent: claimed and now
    (T0 - 5, T0 + 7, (T0, T0 + 7)),           # started before it was claimed
    (1, 2, (T0, T0 + 100)),                   # long ago
    (T0 + 10, T0 + 500, (T0 + 10, T0 + 100)),  # ended in the future
    (T0 + 500, None, (T0, T0 + 100)),         # started in the future
    (T0 + 50, T0 + 20, (T0 + 50, T0 + 100)),  # ended before it started
])
def test_finish_replaces_times_outside_the_claim_window(env: Env, start, end, expected) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    _jobs(env.queue.poll("x86_64", 1))  # claimed at T0
    env.clock.now = T0 + 100
    build = env.queue.finish(build_id, 0, started_at=start, ended_at=end)
    assert (build.started_at, build.ended_at) == expected


def test_finish_on_a_non_running_build_is_conflict(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    with pytest.raises(Conflict):
        env.queue.finish(build_id, 0)  # queued
    _jobs(env.queue.poll("x86_64", 1))
    env.queue.finish(build_id, 0)
    with pytest.raises(Conflict):
        env.queue.finish(build_id, 1)  # already finished
    assert env.db.build(build_id).exit_code == 0
    with pytest.raises(NotFound):
        env.queue.finish(999, 0)


def test_set_task_validates_names_and_statuses(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    with pytest.raises(Conflict):
        env.queue.set_task(build_id, "build", "running")  # not running yet
    _jobs(env.queue.poll("x86_64", 1))
    with pytest.raises(BadRequest):
        env.queue.set_task(build_id, "compile", "running")
    with pytest.raises(BadRequest):
        env.queue.set_task(build_id, "build", "done")
    with pytest.raises(BadRequest):
        env.queue.set_task(build_id, "", "")
    assert env.tasks(build_id) == {name: "pending" for name in TASK_NAMES}
    env.queue.set_task(build_id, "setup", "success")
    env.queue.set_task(build_id, "build", "running")
    assert env.db.build(build_id).tasks == (("setup", "success"), ("source", "pending"),
                                            ("build", "running"), ("publish", "pending"))
    with pytest.raises(NotFound):
        env.queue.set_task(777, "build", "running")


def test_append_log_only_while_running(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    with pytest.raises(Conflict):
        env.queue.append_log(build_id, reader(b"x"), 1)
    _jobs(env.queue.poll("x86_64", 1))
    assert env.queue.append_log(build_id, reader(b"hello "), 6) == 6
    assert env.queue.append_log(build_id, reader(b"world\n"), 6) == 12
    assert env.logs.path(build_id).read_bytes() == b"hello world\n"
    env.queue.finish(build_id, 0)
    with pytest.raises(Conflict):
        env.queue.append_log(build_id, reader(b"late"), 4)
    assert env.logs.path(build_id).read_bytes() == b"hello world\n"


# -- restart persistence ----------------------------------------------------------------

def test_queue_survives_a_restart(env: Env) -> None:
    a, b = env.target(), env.target()
    first = env.queue.queue(a, "x86_64", force=True)
    second = env.queue.queue(b, "x86_64")
    job = _jobs(env.queue.poll("x86_64", 1, runner="a1"))[0]
    assert job["build_id"] == first
    env.queue.set_task(first, "setup", "success")
    env.clock.now = T0 + 30

    env.reopen()

    running = env.db.build(first)
    assert (running.status, running.runner, running.started_at) == ("running", "a1", T0)
    assert running.lease_expires == T0 + LEASE_SECONDS
    assert running.force is True
    assert env.tasks(first)["setup"] == "success"
    assert env.queue.token_build(job["token"]).id == first
    # the queued build is still there, and still one at a time for the running target
    assert env.queue.queue(b, "x86_64") == second
    jobs = _jobs(env.queue.poll("x86_64", 5))
    assert [j["build_id"] for j in jobs] == [second]
    # the running build's lease goes on from where it was
    assert env.queue.renew(first).lease_expires == T0 + 30 + LEASE_SECONDS
    env.clock.now = T0 + 30 + LEASE_SECONDS + 1
    assert sorted(env.queue.reap()) == [first, second]


def test_lease_expires_across_a_restart(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    token = _jobs(env.queue.poll("x86_64", 1))[0]["token"]
    env.reopen()
    env.clock.now = T0 + LEASE_SECONDS + 1  # the agent died while the server was down
    assert env.queue.reap() == [build_id]
    assert env.queue.token_build(token) is None
    assert [j["build_id"] for j in _jobs(env.queue.poll("x86_64", 1))] == [build_id]


def test_queue_does_not_create_a_build_for_a_target_deleted_meanwhile(env: Env) -> None:
    """BUG: BuildQueue.queue reads the target, then queue_build inserts in a separate
    transaction. A DELETE of the target committed in between (a web thread) leaves a
    queued build of a deleted target, which is then handed out to an agent."""
    tid = env.target()
    real_queue_build = env.db.queue_build

    def deleted_meanwhile(target, *args):
        env.db.remove_target(target.id)  # the DELETE commits between the two steps
        return real_queue_build(target, *args)

    env.db.queue_build = deleted_meanwhile  # type: ignore[method-assign]
    with pytest.raises(NotFound):
        env.queue.queue(tid, "x86_64")
    assert env.db.build_counts() == {}
    assert _jobs(env.queue.poll("x86_64", 5)) == []


def test_release_hands_a_build_back_without_counting_a_lost_lease(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    token = _jobs(env.queue.poll("x86_64", 1))[0]["token"]
    released = env.queue.release(build_id)
    assert (released.status, released.expiries, released.runner) == ("queued", 0, "")
    assert env.queue.token_build(token) is None
    assert "handed the build back" in env.logs.path(build_id).read_text()
    assert [j["build_id"] for j in _jobs(env.queue.poll("x86_64", 1))] == [build_id]
    with pytest.raises(Conflict):
        env.queue.release(env.queue.queue(env.target(), "x86_64"))  # queued, not running


def test_a_build_is_handed_back_at_most_max_releases_times(env: Env) -> None:
    build_id = env.queue.queue(env.target(), "x86_64")
    for n in range(1, MAX_RELEASES + 1):
        assert [j["build_id"] for j in _jobs(env.queue.poll("x86_64", 1))] == [build_id]
        released = env.queue.release(build_id)
        assert (released.status, released.releases) == ("queued", n)
    token = _jobs(env.queue.poll("x86_64", 1))[0]["token"]
    failed = env.queue.release(build_id)
    assert (failed.status, failed.exit_code, failed.releases) == ("failed", -1, MAX_RELEASES)
    assert env.queue.token_build(token) is None
    assert env.logs.path(build_id).read_text().splitlines()[-1] == \
        f"vieter-lite: the build was handed back {MAX_RELEASES} times already; build failed"
    assert _jobs(env.queue.poll("x86_64", 1)) == []
    with pytest.raises(Conflict):
        env.queue.release(build_id)
    env.reopen()  # the count is in sqlite
    assert env.db.build(build_id).releases == MAX_RELEASES
