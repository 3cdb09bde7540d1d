"""SQL of builds.sr.ht's jobs on a real sqlite file: builds from specs, pending and held
builds, the last successful source of a target or a manifest's source, and pruning."""

from __future__ import annotations

import json

import pytest

from vieter_lite.db import Database
from vieter_lite.models import NO_TARGET, BuildSpec


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "vieter.sqlite")
    yield database
    database.close()


def target(db: Database, url: str = "https://example.invalid/a.git") -> int:
    return db.add_target({"kind": "git", "url": url, "repo": "r"}, {"x86_64": None})


def build(db: Database, target_id: int, status: str, bundle: bytes | None,
          url: str = "https://example.invalid/a.git") -> int:
    """A build that ran to `status`, with a source bundle (or none)."""
    build_id = db.add_build(BuildSpec(target_id=target_id, arch="x86_64", repo="r", kind="git",
                                      url=url), now=1)
    if bundle is not None:
        db.put_source(build_id, bundle, "", 1, approved=True)
    if status != "queued":
        db.finish_build(build_id, status, 0 if status == "success" else 1, 2)
    return build_id


def test_a_spec_becomes_a_build_with_everything_it_carries(db):
    spec = BuildSpec(target_id=NO_TARGET, arch="aarch64", repo="r", kind="pkgbuild",
                     owner="alice", note="n", tags=("a", "b", "a"), labels={"k": "v"},
                     access_read=("bob",), access_write=("carol",),
                     triggers='[{"action":"email"}]', environment='{"A":"1"}',
                     review="never", execute=False, manifest="repo: r", bundle=b"tar")
    made = db.build(db.add_build(spec, now=5, sha256="ab"))
    assert made is not None and made.status == "pending" and not made.has_target
    assert (made.owner, made.note, made.access_read, made.access_write) == \
        ("alice", "n", ("bob",), ("carol",))
    assert json.loads(made.triggers) == [{"action": "email"}]
    assert json.loads(made.environment) == {"A": "1"} and made.publisher == (None, "alice")
    assert [t for t, _ in made.tasks] == ["setup", "source", "build", "publish"]
    assert db.build_tags(made.id) == ("a", "b")
    assert db.build_manifest(made.id) == "repo: r"
    assert db.build_source(made.id) == (b"tar", True)


def test_start_queues_only_a_pending_build_and_approves_its_source(db):
    build_id = db.add_build(BuildSpec(target_id=target(db), arch="x86_64", repo="r",
                                      kind="git", execute=False), now=1)
    db.put_source(build_id, b"fetched", "", 1)
    assert db.build_source(build_id) == (b"fetched", False)
    assert db.start_build(build_id) and not db.start_build(build_id)
    assert db.build_source(build_id) == (b"fetched", True)
    assert db.build(build_id).status == "queued"


def test_a_held_build_keeps_its_first_tasks_and_loses_its_claim(db):
    target_id = target(db)
    build_id = build(db, target_id, "queued", None)
    [claimed] = db.claim_builds("x86_64", 1, "agent", 10, 120, ["hash"])
    assert claimed.id == build_id and db.build_by_token("hash") is not None
    db.set_task(build_id, "source", "running")
    assert db.hold_build(build_id, "review", "the diff")
    held = db.build(build_id)
    assert (held.status, held.hold_reason, held.hold_diff, held.runner) == \
        ("pending", "review", "the diff", "")
    assert dict(held.tasks) == {"setup": "success", "source": "success", "build": "pending",
                                "publish": "pending"}
    assert db.build_by_token("hash") is None and not db.hold_build(build_id, "review", "x")
    # a cancel clears the hold
    assert db.finish_build(build_id, "cancelled", None, 20)
    assert db.build(build_id).hold_reason is None


def test_manifest_builds_run_side_by_side_while_a_targets_builds_take_turns(db):
    target_id = target(db)
    ids = [build(db, target_id, "queued", None) for _ in range(2)]
    ids += [build(db, NO_TARGET, "queued", None) for _ in range(2)]
    claimed = db.claim_builds("x86_64", 10, "agent", 10, 120, [f"h{i}" for i in range(10)])
    assert [b.id for b in claimed] == [ids[0], ids[2], ids[3]]


def test_the_last_good_source_is_the_same_targets_or_the_same_manifest_sources(db):
    one, other = target(db), target(db, "https://example.invalid/b.git")
    build(db, one, "success", b"one-1")
    build(db, one, "success", b"one-2")
    build(db, one, "failed", b"one-broken")
    build(db, other, "success", b"other")
    build(db, NO_TARGET, "success", b"manifest-a", url="https://example.invalid/a.git")
    build(db, NO_TARGET, "success", b"manifest-b", url="https://example.invalid/b.git")
    assert db.last_good_source(build(db, one, "queued", None)) == b"one-2"
    assert db.last_good_source(build(db, other, "queued", None)) == b"other"
    assert db.last_good_source(build(db, NO_TARGET, "queued", None,
                                     url="https://example.invalid/a.git")) == b"manifest-a"
    assert db.last_good_source(build(db, target(db, "https://example.invalid/c.git"),
                                     "queued", None)) is None


def test_pruning_keeps_the_last_good_source_of_each_and_every_open_builds(db):
    one = target(db)
    old = build(db, one, "success", b"old")
    last = build(db, one, "success", b"last")
    failed = build(db, one, "failed", b"failed")
    running = build(db, one, "queued", b"open")
    manifest_old = build(db, NO_TARGET, "success", b"m-old")
    manifest_last = build(db, NO_TARGET, "success", b"m-last")
    other_manifest = build(db, NO_TARGET, "success", b"m-other",
                           url="https://example.invalid/z.git")
    assert db.prune_sources() == 3
    kept = {i for i in (old, last, failed, running, manifest_old, manifest_last, other_manifest)
            if db.build_source(i) is not None}
    assert kept == {last, running, manifest_last, other_manifest}
