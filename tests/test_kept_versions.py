"""Kept versions (keep_versions) and rollbacks in the store: real package files in a data
dir, real sqlite. A replaced version stays on disk (with its `<file>.sig`) out of the db
archives; prunes, removals and crash recovery take exactly the files nothing uses; a
rollback republishes a kept file and can hold the name there."""

from __future__ import annotations

import itertools
import tarfile
from pathlib import Path

import pytest

from pkgfactory import make_synthetic_package
from vieter_lite.db import Database
from vieter_lite.errors import Conflict, Forbidden, NotFound
from vieter_lite.models import PackageOwner
from vieter_lite.repo.store import RepoStore
from vieter_lite.rollback import Rollbacks, refusal
from vieter_lite.tokens import ADMIN, Principal

REPO, ARCH = "core", "x86_64"


class SimulatedCrash(Exception):
    pass


def crash(*args, **kwargs):
    raise SimulatedCrash()


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def db(data):
    database = Database(data / "vieter.sqlite")
    yield database
    database.close()


def open_store(db: Database, data: Path, keep: int) -> RepoStore:
    """A store on the data dir, as the server opens it (recover() run)."""
    store = RepoStore(db, data, data / "pkgs", ARCH, keep_versions=keep)
    store.recover()
    return store


@pytest.fixture
def upload(tmp_path):
    """upload(name, version, arch) -> a fresh synthetic package file."""
    directory = tmp_path / "uploads"
    directory.mkdir()
    counter = itertools.count()

    def make(name: str, version: str, arch: str = ARCH) -> Path:
        pkginfo = {"pkgname": name, "pkgver": version, "arch": arch, "size": "10"}
        return make_synthetic_package(directory / f"{next(counter)}.pkg", pkginfo,
                                      {f"usr/share/{name}/VERSION": version.encode()})
    return make


def filename(name: str, version: str, arch: str = ARCH) -> str:
    return f"{name}-{version}-{arch}.pkg.tar.zst"


def publish_signed(store: RepoStore, upload, name: str, version: str, arch: str = ARCH,
                   **kw) -> Path:
    """Publish, then put a detached signature next to the file, as signing does."""
    store.publish(REPO, upload(name, version, arch), **kw)
    path = store.pkg_dir / REPO / (ARCH if arch == "any" else arch) / filename(name, version,
                                                                               arch)
    sig = path.with_name(path.name + ".sig")
    sig.write_bytes(b"signature of " + path.name.encode())
    return path


def on_disk(store: RepoStore, arch: str = ARCH) -> list[str]:
    return sorted(p.name for p in (store.pkg_dir / REPO / arch).iterdir())


def entries(store: RepoStore, arch: str = ARCH) -> set[str]:
    with tarfile.open(store.archive_path(REPO, arch, "db")) as tar:
        return {m.name.rpartition("/")[0] for m in tar if m.isfile()}


def kept(db: Database, name: str, arch: str = ARCH) -> list[str]:
    return [k.package.version for k in db.kept_versions(REPO, arch, name)]


def with_sigs(*names: str) -> list[str]:
    return sorted([*names, *(n + ".sig" for n in names)])


# -- keeping and pruning ---------------------------------------------------------------------

def test_the_last_n_replaced_versions_stay_on_disk_with_their_signatures(db, data, upload):
    store = open_store(db, data, keep=2)
    for version in ("1.0-1", "1.1-1", "1.2-1", "1.3-1"):
        publish_signed(store, upload, "hello", version)
    # 1.0-1 was pruned (the third one replaced), its signature with it
    assert on_disk(store) == with_sigs(*(filename("hello", v) for v in ("1.1-1", "1.2-1",
                                                                         "1.3-1")))
    assert kept(db, "hello") == ["1.2-1", "1.1-1"]
    assert entries(store) == {"hello-1.3-1"}  # kept versions are not in the db archives


def test_without_keep_versions_the_old_file_goes_and_earlier_kept_ones_too(db, data, upload):
    """keep_versions lowered to 0: the next upgrade forgets the name's kept versions and
    removes their files (and signatures), as before keep_versions existed."""
    for version in ("1.0-1", "1.1-1"):
        publish_signed(open_store(db, data, keep=3), upload, "hello", version)
    store = RepoStore(db, data, data / "pkgs", ARCH, keep_versions=0)  # no recover(): the
    publish_signed(store, upload, "hello", "1.2-1")                     # upgrade prunes
    assert on_disk(store) == with_sigs(filename("hello", "1.2-1"))
    assert kept(db, "hello") == []


def test_republishing_the_same_version_keeps_nothing(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "1.0-1")
    assert kept(db, "hello") == []
    assert on_disk(store) == with_sigs(filename("hello", "1.0-1"))


def test_a_forced_downgrade_to_a_kept_version_makes_it_current_again(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    store.publish(REPO, upload("hello", "1.0-1"), force=True)
    assert kept(db, "hello") == ["2.0-1"]  # 1.0-1 is current, not also kept
    assert entries(store) == {"hello-1.0-1"}
    # the upload came without a signature: the kept file's old one does not vouch for it
    assert on_disk(store) == sorted([filename("hello", "1.0-1"),
                                     *with_sigs(filename("hello", "2.0-1"))])


# -- removal ---------------------------------------------------------------------------------

def test_removing_a_package_removes_its_kept_versions_and_hold(db, data, upload):
    store = open_store(db, data, keep=2)
    for version in ("1.0-1", "1.1-1", "1.2-1"):
        publish_signed(store, upload, "hello", version)
    publish_signed(store, upload, "other", "1.0-1")
    Rollbacks(db, store).rollback(REPO, ARCH, "hello", "1.1-1", ADMIN, hold=True)
    store.remove_package(REPO, ARCH, "hello")
    assert on_disk(store) == with_sigs(filename("other", "1.0-1"))
    assert kept(db, "hello") == [] and db.package_hold(REPO, ARCH, "hello") is None
    # published again, the name starts without kept versions or a hold
    store.publish(REPO, upload("hello", "3.0-1"))
    assert kept(db, "hello") == [] and entries(store) == {"hello-3.0-1", "other-1.0-1"}


def test_removing_an_arch_repo_forgets_its_kept_versions_and_holds(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    Rollbacks(db, store).rollback(REPO, ARCH, "hello", "1.0-1", ADMIN, hold=True)
    store.remove_arch_repo(REPO, ARCH)
    assert db.kept_by_name(REPO, ARCH) == {} and db.package_holds(REPO, ARCH) == {}
    store.publish(REPO, upload("hello", "5.0-1"))  # no hold left behind
    assert kept(db, "hello") == [] and entries(store) == {"hello-5.0-1"}


# -- crash recovery --------------------------------------------------------------------------

def test_recovery_keeps_kept_files_and_removes_what_a_crash_left_unreferenced(
        db, data, upload, monkeypatch):
    store = open_store(db, data, keep=1)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    stray = store.pkg_dir / REPO / ARCH / "stray-1-1-x86_64.pkg.tar.zst"
    stray.write_bytes(b"nobody's")
    with monkeypatch.context() as patched:
        # dies after the db commit and the archives, before the replaced files are unlinked
        patched.setattr(store, "_unlink_unreferenced", crash)
        with pytest.raises(SimulatedCrash):
            publish_signed(store, upload, "hello", "3.0-1")
    new = filename("hello", "3.0-1")
    assert len(on_disk(store)) == 6  # 1.0-1 and 2.0-1 (signed), 3.0-1 unsigned, the stray

    store = open_store(db, data, keep=1)
    # 1.0-1 was pruned by the crashed publish: its file and signature go; 2.0-1 is kept
    assert on_disk(store) == sorted([*with_sigs(filename("hello", "2.0-1")), new])
    assert kept(db, "hello") == ["2.0-1"] and entries(store) == {"hello-3.0-1"}


def test_lowering_keep_versions_forgets_the_oldest_kept_at_start(db, data, upload):
    store = open_store(db, data, keep=3)
    for version in ("1.0-1", "2.0-1", "3.0-1", "4.0-1"):
        publish_signed(store, upload, "hello", version)
    assert kept(db, "hello") == ["3.0-1", "2.0-1", "1.0-1"]

    store = open_store(db, data, keep=1)
    assert kept(db, "hello") == ["3.0-1"]
    assert on_disk(store) == with_sigs(filename("hello", "3.0-1"), filename("hello", "4.0-1"))


# -- rollback and holds ----------------------------------------------------------------------

def test_a_rollback_republishes_a_kept_version_and_keeps_the_owner(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    db.set_package_owner(REPO, "hello", 7, 1)  # a target's build owns the name
    Rollbacks(db, store).rollback(REPO, ARCH, "hello", "1.0-1", ADMIN)
    current = db.package(REPO, ARCH, "hello")
    assert current is not None and current.version == "1.0-1"
    assert entries(store) == {"hello-1.0-1"}
    assert kept(db, "hello") == ["2.0-1"]
    owner = db.package_owner(REPO, "hello")
    assert owner is not None and owner.target_id == 7
    # both files and their signatures are still there, nothing else; the rolled-back
    # version's signature is its own, as it was
    assert on_disk(store) == with_sigs(filename("hello", "1.0-1"), filename("hello", "2.0-1"))
    sig = store.pkg_dir / REPO / ARCH / (filename("hello", "1.0-1") + ".sig")
    assert sig.read_bytes() == b"signature of " + filename("hello", "1.0-1").encode()
    assert db.package_hold(REPO, ARCH, "hello") is None


def test_an_unknown_version_or_package_is_not_found(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    rollbacks = Rollbacks(db, store)
    with pytest.raises(NotFound, match=r"version 0.9-1 of 'hello' is not kept .*kept: 1.0-1"):
        rollbacks.rollback(REPO, ARCH, "hello", "0.9-1", ADMIN)
    with pytest.raises(NotFound, match="package 'nope' not found"):
        rollbacks.rollback(REPO, ARCH, "nope", "1.0-1", ADMIN)
    assert db.package(REPO, ARCH, "hello").version == "2.0-1"  # type: ignore[union-attr]


def test_a_hold_refuses_newer_versions_until_released(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    rollbacks = Rollbacks(db, store)
    rollbacks.rollback(REPO, ARCH, "hello", "1.0-1", ADMIN, hold=True)
    hold = db.package_hold(REPO, ARCH, "hello")
    assert hold is not None and (hold.version, hold.held_by) == ("1.0-1", "api_key")
    with pytest.raises(Conflict, match=r"hello is held at 1.0-1 in core/x86_64 .*3.0-1 is "
                                       r"not published until the hold is released"):
        store.publish(REPO, upload("hello", "3.0-1"), force=True)
    assert entries(store) == {"hello-1.0-1"}
    store.publish(REPO, upload("hello", "1.0-1"))  # the held version itself may be rebuilt
    rollbacks.release(REPO, ARCH, "hello", ADMIN)
    with pytest.raises(NotFound, match="not held"):
        rollbacks.release(REPO, ARCH, "hello", ADMIN)
    store.publish(REPO, upload("hello", "3.0-1"))
    assert entries(store) == {"hello-3.0-1"}


def test_a_rollback_without_hold_releases_one(db, data, upload):
    store = open_store(db, data, keep=3)
    for version in ("1.0-1", "2.0-1", "3.0-1"):
        publish_signed(store, upload, "hello", version)
    rollbacks = Rollbacks(db, store)
    rollbacks.rollback(REPO, ARCH, "hello", "1.0-1", ADMIN, hold=True)
    rollbacks.rollback(REPO, ARCH, "hello", "2.0-1", ADMIN)  # forward to a kept version
    assert db.package_hold(REPO, ARCH, "hello") is None
    assert kept(db, "hello") == ["1.0-1", "3.0-1"]
    # the current version: only the hold changes
    rollbacks.rollback(REPO, ARCH, "hello", "2.0-1", ADMIN, hold=True)
    assert db.package_hold(REPO, ARCH, "hello").version == "2.0-1"  # type: ignore[union-attr]
    assert kept(db, "hello") == ["1.0-1", "3.0-1"]


def test_an_any_package_is_rolled_back_and_held_in_every_arch_repo(db, data, upload):
    store = open_store(db, data, keep=1)
    store.publish(REPO, upload("tool", "1.0-1", "aarch64"))  # a second arch-repo
    store.publish(REPO, upload("data", "1.0-1", "any"))
    store.publish(REPO, upload("data", "2.0-1", "any"))
    Rollbacks(db, store).rollback(REPO, "aarch64", "data", "1.0-1", ADMIN, hold=True)
    for arch in ("aarch64", "x86_64"):
        assert "data-1.0-1" in entries(store, arch)
        assert kept(db, "data", arch) == ["2.0-1"]
        assert db.package_hold(REPO, arch, "data").version == "1.0-1"  # type: ignore
    with pytest.raises(Conflict, match="held at 1.0-1"):
        store.publish(REPO, upload("data", "2.0-1", "any"))


def test_a_failed_republish_puts_the_holds_back(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    rollbacks = Rollbacks(db, store)
    rollbacks.rollback(REPO, ARCH, "hello", "2.0-1", ADMIN, hold=True)
    (store.pkg_dir / REPO / ARCH / filename("hello", "1.0-1")).unlink()
    with pytest.raises(NotFound, match="missing"):
        rollbacks.rollback(REPO, ARCH, "hello", "1.0-1", ADMIN, hold=True)
    assert db.package_hold(REPO, ARCH, "hello").version == "2.0-1"  # type: ignore


# -- who may roll back -----------------------------------------------------------------------

ALICE = Principal(name="alice-ci", user="alice", scopes=frozenset({"repos:publish"}))
ONLY_OTHER = Principal(name="ci", user="ci", scopes=frozenset({"repos:publish"}),
                       repos=("extra",))


@pytest.mark.parametrize("principal, owner, allowed", [
    (ALICE, None, True),                                          # nobody's yet
    (ALICE, PackageOwner(REPO, "n", None), True),                 # the admin's
    (ALICE, PackageOwner(REPO, "n", None, user="alice"), True),   # her own builds'
    (ALICE, PackageOwner(REPO, "n", None, user="bob"), False),    # another user's
    (ALICE, PackageOwner(REPO, "n", 3), False),                   # a target's
    (ADMIN, PackageOwner(REPO, "n", 3), True),
    (ADMIN, PackageOwner(REPO, "n", None, user="bob"), True),
])
def test_who_may_roll_back(principal, owner, allowed):
    assert (refusal(principal, owner) is None) is allowed


def test_a_token_is_refused_a_target_owned_name_and_other_repos(db, data, upload):
    store = open_store(db, data, keep=2)
    publish_signed(store, upload, "hello", "1.0-1")
    publish_signed(store, upload, "hello", "2.0-1")
    db.set_package_owner(REPO, "hello", 3, 1)
    rollbacks = Rollbacks(db, store)
    with pytest.raises(Forbidden, match="belongs to target 3: only an admin"):
        rollbacks.rollback(REPO, ARCH, "hello", "1.0-1", ALICE)
    with pytest.raises(Forbidden, match="may not publish to 'core'"):
        rollbacks.rollback(REPO, ARCH, "hello", "1.0-1", ONLY_OTHER)
    assert db.package(REPO, ARCH, "hello").version == "2.0-1"  # type: ignore[union-attr]
