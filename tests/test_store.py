"""RepoStore on disk: crash recovery, coalesced archive rewrites, Last-Modified, hard links."""

from __future__ import annotations

import itertools
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

from pkgfactory import make_synthetic_package
from vieter_lite.db import Database
from vieter_lite.repo import database
from vieter_lite.repo.store import RepoStore

FROZEN = 1_700_000_000.25


class SimulatedCrash(Exception):
    pass


def crash(*args, **kwargs):
    raise SimulatedCrash()


# -- helpers -------------------------------------------------------------------------------

@pytest.fixture
def store(services) -> RepoStore:
    return services.store


@pytest.fixture
def upload(tmp_path):
    """upload(name, version, arch, **pkginfo) -> path of a fresh synthetic package."""
    directory = tmp_path / "uploads"
    directory.mkdir()
    counter = itertools.count()

    def make(name: str, version: str = "1.0-1", arch: str = "x86_64", **fields: str) -> Path:
        pkginfo = {"pkgname": name, "pkgver": version, "arch": arch, "size": "10", **fields}
        return make_synthetic_package(directory / f"{next(counter)}.pkg", pkginfo,
                                      {f"usr/share/{name}/README": f"{name} {version}".encode()})
    return make


def entries(store: RepoStore, repo: str = "core", arch: str = "x86_64") -> set[str]:
    """The package entries ('<name>-<version>') in the arch-repo's .db and .files archives."""
    found = []
    for kind, members in (("db", {"desc"}), ("files", {"desc", "files"})):
        with tarfile.open(store.archive_path(repo, arch, kind)) as tar:
            names = [m.name for m in tar if m.isfile()]
        by_entry: dict[str, set[str]] = {}
        for name in names:
            entry, _, member = name.rpartition("/")
            by_entry.setdefault(entry, set()).add(member)
        assert all(m == members for m in by_entry.values()), (kind, names)
        found.append(set(by_entry))
    assert found[0] == found[1]
    return found[0]


def pkg_names(store: RepoStore, repo: str = "core", arch: str = "x86_64") -> list[str]:
    return sorted(p.name for p in (store.pkg_dir / repo / arch).iterdir())


def mtime(path: Path) -> float:
    return path.stat().st_mtime


def restarted(services) -> RepoStore:
    """A new store on the same data, as after a process restart, with recover() run."""
    config = services.config
    store = RepoStore(services.db, config.data_dir, config.pkg_dir, config.default_arch)
    store.recover()
    return store


# -- crash recovery ------------------------------------------------------------------------

def test_recover_rewrites_archives_a_crash_left_stale(services, store, monkeypatch, upload):
    store.publish("core", upload("a"))
    with monkeypatch.context() as patched:
        patched.setattr(store, "write_archives", crash)  # dies right after the db commit
        with pytest.raises(SimulatedCrash):
            store.publish("core", upload("b"))
    assert services.db.unwritten_arch_repos() == [("core", "x86_64")]
    assert entries(store) == {"a-1.0-1"}

    store = restarted(services)
    assert entries(store) == {"a-1.0-1", "b-1.0-1"}
    assert services.db.unwritten_arch_repos() == []
    assert pkg_names(store) == ["a-1.0-1-x86_64.pkg.tar.zst", "b-1.0-1-x86_64.pkg.tar.zst"]


def test_recover_writes_the_archives_of_a_new_arch_repo(services, store, monkeypatch, upload):
    with monkeypatch.context() as patched:
        patched.setattr(store, "write_archives", crash)
        with pytest.raises(SimulatedCrash):
            store.publish("core", upload("tool", arch="aarch64"))
    assert not store.archive_path("core", "aarch64", "db").exists()

    store = restarted(services)
    assert entries(store, arch="aarch64") == {"tool-1.0-1"}
    assert (store.repos_dir / "core" / "aarch64" / "core.db").resolve() == \
        store.archive_path("core", "aarch64", "db").resolve()


def test_recover_after_a_crash_during_removal(services, store, monkeypatch, upload):
    store.publish("core", upload("a"))
    store.publish("core", upload("b"))
    with monkeypatch.context() as patched:
        patched.setattr(store, "write_archives", crash)
        with pytest.raises(SimulatedCrash):
            store.remove_package("core", "x86_64", "a")
    assert entries(store) == {"a-1.0-1", "b-1.0-1"}

    store = restarted(services)
    assert entries(store) == {"b-1.0-1"}
    assert pkg_names(store) == ["b-1.0-1-x86_64.pkg.tar.zst"]  # a's file was orphaned


def test_recover_removes_leftovers(services, store, upload):
    store.publish("core", upload("a"))
    leftovers = [
        store.tmp_dir / "upload-0123456789abcdef",            # an interrupted upload
        store.pkg_dir / "core" / "x86_64" / "stray-1-1-x86_64.pkg.tar.zst",  # unreferenced
        store.pkg_dir / "core" / "x86_64" / ".tmp.0123456789abcdef",  # an interrupted link
        store.repos_dir / "core" / "armv7h" / "core.db.tar.gz",  # arch dir without a row
        store.pkg_dir / "core" / "armv7h" / "old-1-1-armv7h.pkg.tar.zst",
        store.repos_dir / "ghost" / "x86_64" / "ghost.db.tar.gz",  # repo without rows
        store.pkg_dir / "ghost" / "x86_64" / "g-1-1-x86_64.pkg.tar.zst",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left over")
    db_before = store.archive_path("core", "x86_64", "db").read_bytes()

    store = restarted(services)
    for path in leftovers:
        assert not path.exists(), path
    for gone in ("core/armv7h", "ghost"):
        assert not (store.repos_dir / gone).exists() and not (store.pkg_dir / gone).exists()
    assert list(store.tmp_dir.iterdir()) == []
    assert pkg_names(store) == ["a-1.0-1-x86_64.pkg.tar.zst"]
    assert store.archive_path("core", "x86_64", "db").read_bytes() == db_before


def test_recover_with_nothing_to_do_changes_nothing(services, store, upload):
    store.publish("core", upload("a"))
    path = store.archive_path("core", "x86_64", "db")
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino)
    restarted(services)
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_recover_keeps_the_data_dir_when_pkg_dir_is_the_data_dir(tmp_path, upload):
    """pkg_dir = data_dir (e.g. VIETER_PKG_DIR=/data and VIETER_DATA_DIR=/data): recover()
    must not take data_dir/repos for a repo directory of pkg_dir and wipe it."""
    data = tmp_path / "data"
    data.mkdir()
    db = Database(data / "vieter.sqlite")
    try:
        RepoStore(db, data, data, "x86_64").publish("core", upload("a"))
        store = RepoStore(db, data, data, "x86_64")
        store.recover()
        assert entries(store) == {"a-1.0-1"}
        assert pkg_names(store) == ["a-1.0-1-x86_64.pkg.tar.zst"]
    finally:
        db.close()


# -- coalescing ----------------------------------------------------------------------------

def test_a_burst_of_publishes_shares_one_archive_rewrite(services, store, monkeypatch, upload):
    store.publish("core", upload("first"))
    writes = []
    real_write = database.write_segments
    monkeypatch.setattr(database, "write_segments",
                        lambda *args: writes.append(1) or real_write(*args))
    uploads = [upload(f"p{i}") for i in range(10)]

    errors: list[BaseException] = []

    def publish(path: Path) -> None:
        try:
            store.publish("core", path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(p,)) for p in uploads]
    with store._lock(("archives", "core", "x86_64")):  # the writer is busy...
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(services.db.packages("core", "x86_64")) < 11:  # ...while all ten commit
            assert time.monotonic() < deadline, "publishes did not commit"
            time.sleep(0.01)
        assert writes == []
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(writes) == 1  # the first writer covered every commit; the others had nothing to do
    assert entries(store) == {"first-1.0-1", *(f"p{i}-1.0-1" for i in range(10))}
    assert services.db.unwritten_arch_repos() == []


# -- Last-Modified -------------------------------------------------------------------------

def test_archive_mtime_increases_within_one_second(store, upload):
    store.clock = lambda: FROZEN
    db, files = (store.archive_path("core", "x86_64", k) for k in ("db", "files"))
    store.publish("core", upload("a"))
    first = mtime(db)
    store.publish("core", upload("b"))
    assert mtime(db) > first and int(mtime(db)) > int(first)
    assert mtime(files) == mtime(db)
    store.remove_package("core", "x86_64", "a")
    assert int(mtime(db)) > int(first) + 1


def test_archive_mtime_increases_with_the_real_clock(store, upload):
    db = store.archive_path("core", "x86_64", "db")
    stamps = []
    for name in ("a", "b", "c"):
        store.publish("core", upload(name))
        stamps.append(int(mtime(db)))
    assert stamps == sorted(set(stamps))


def test_archive_mtime_increases_after_the_arch_repo_is_recreated(store, upload):
    """A client holding the old db (If-Modified-Since = its Last-Modified) must not get 304
    for the db of an arch-repo that was deleted and re-created in the same second."""
    store.clock = lambda: FROZEN
    db = store.archive_path("core", "x86_64", "db")
    store.publish("core", upload("a"))
    first = int(mtime(db))
    store.remove_arch_repo("core", "x86_64")
    store.publish("core", upload("b"))
    assert entries(store) == {"b-1.0-1"}
    assert int(mtime(db)) > first


# -- races between requests ----------------------------------------------------------------

class Racer:
    """Runs another request on its own thread at a chosen moment and gives it a second to
    finish; if the store holds a lock there, the request simply waits (no race)."""

    def __init__(self, request):
        self.thread = threading.Thread(target=request)

    def go(self) -> None:
        self.thread.start()
        self.thread.join(1.0)

    def finish(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_a_publish_during_repo_removal_is_not_half_deleted(store, monkeypatch, upload):
    """remove_repo() removes each arch-repo under the lock, then rmtree()s the repo's
    directories without it: a publish that lands in between keeps its db rows but loses
    its package file and archives."""
    store.publish("core", upload("a"))
    late = upload("late")
    racer = Racer(lambda: store.publish("core", late))
    remove_arch_repo = store.remove_arch_repo

    def remove_then_race(repo: str, arch: str) -> None:
        remove_arch_repo(repo, arch)
        racer.go()

    monkeypatch.setattr(store, "remove_arch_repo", remove_then_race)
    store.remove_repo("core")
    if racer.thread.ident is not None:
        racer.finish()
    if store.db.arch_repos("core"):  # the late publish survived: it must be whole
        assert entries(store) == {"late-1.0-1"}
        assert pkg_names(store) == ["late-1.0-1-x86_64.pkg.tar.zst"]


def test_a_republish_is_not_unlinked_by_an_earlier_removal(store, monkeypatch, upload):
    """remove_package() asks 'is the old file still referenced?' and unlinks it after
    releasing the repo lock: a republish of the same file in between loses its file."""
    store.publish("core", upload("a"))
    again = upload("a")
    racer = Racer(lambda: store.publish("core", again))  # DELETE, then publish again
    file_referenced = store.db.file_referenced

    def check_then_race(repo: str, arch: str, filename: str) -> bool:
        answer = file_referenced(repo, arch, filename)
        if racer.thread.ident is None:
            racer.go()
        return answer

    monkeypatch.setattr(store.db, "file_referenced", check_then_race)
    store.remove_package("core", "x86_64", "a")
    racer.finish()
    assert entries(store) == {"a-1.0-1"}
    assert pkg_names(store) == ["a-1.0-1-x86_64.pkg.tar.zst"]


# -- hard links ----------------------------------------------------------------------------

def test_any_package_is_one_file_hard_linked_into_each_arch_repo(store, upload):
    store.publish("core", upload("tool", arch="aarch64"))
    common = upload("common", arch="any")
    result = store.publish("core", common)
    common.unlink()  # as the publish route does with its upload
    assert result.archs == ("aarch64", "x86_64")
    store.publish("core", upload("tool32", arch="armv7h"))  # back-filled with common

    paths = [store.pkg_dir / "core" / arch / "common-1.0-1-any.pkg.tar.zst"
             for arch in ("aarch64", "armv7h", "x86_64")]
    inodes = {os.stat(p).st_ino for p in paths}
    assert len(inodes) == 1
    assert os.stat(paths[0]).st_nlink == 3
    for arch in ("aarch64", "armv7h", "x86_64"):
        assert "common-1.0-1" in entries(store, arch=arch)

    store.remove_package("core", "armv7h", "common")
    assert not paths[1].exists() and os.stat(paths[0]).st_nlink == 2


# -- incremental archives ------------------------------------------------------------------

def test_incremental_archives_equal_a_full_rewrite(services, store, upload):
    """After publishes, replacements and removals (each recompressing only its bucket), the
    archives are byte for byte what a fresh store writes from the database alone."""
    names = [f"pkg{i}" for i in range(40)]
    for name in names:
        store.publish("core", upload(name))
    for name in names[::3]:
        store.publish("core", upload(name, "2.0-1"))
    for name in names[1::5]:
        store.remove_package("core", "x86_64", name)
    incremental = {kind: store.archive_path("core", "x86_64", kind).read_bytes()
                   for kind in ("db", "files")}

    fresh = restarted(services)
    for kind in ("db", "files"):
        fresh.archive_path("core", "x86_64", kind).unlink()
    fresh.write_archives("core", "x86_64")
    for kind in ("db", "files"):
        assert fresh.archive_path("core", "x86_64", kind).read_bytes() == incremental[kind]

    expected = {f"{p.name}-{p.version}" for p in services.db.packages("core", "x86_64")}
    assert entries(store) == expected
    assert len(expected) == 40 - len(names[1::5])
    assert "pkg0-2.0-1" in expected and "pkg1-1.0-1" not in expected


def test_only_the_changed_bucket_is_recompressed(store, upload, monkeypatch):
    for i in range(30):
        store.publish("core", upload(f"pkg{i}"))
    compressed = []
    real = database.compress_segment
    monkeypatch.setattr(database, "compress_segment",
                        lambda members: compressed.append(1) or real(members))
    store.publish("core", upload("pkg7", "1.1-1"))
    assert len(compressed) == 1
    assert "pkg7-1.1-1" in entries(store)
