"""backup, restore and check against a real server process: a backup taken while publishes
go on holds every package its db names with the right sha256; restore refuses a running
server, a used data dir and a damaged backup; check finds each kind of damage one can do to
a data dir (and nothing on a sound one) and --repair leaves it clean. The pure comparisons
have table tests."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT, ServerProcess
from pkgfactory import make_synthetic_package
from vieter_lite.check import archive_problems, file_problems
from vieter_lite.db.integrity import ArchRepoState, FileRef

REPO = "main"
ARCH = "x86_64"


# -- the comparisons --------------------------------------------------------------------

def ref(filename: str, sha: str = "aa", kind: str = "package", name: str = "a") -> FileRef:
    return FileRef(REPO, ARCH, name, "1-1", filename, sha, kind)


def rel(filename: str) -> str:
    return f"{REPO}/{ARCH}/{filename}"


@pytest.mark.parametrize("refs, disk, sigs, expected", [
    # sound: the file with its sha256, and its signature
    ([ref("a.pkg")], {rel("a.pkg"): "aa"}, {rel("a.pkg.sig")}, []),
    ([ref("a.pkg")], {}, set(), [("missing-file", rel("a.pkg"))]),
    ([ref("a.pkg", kind="kept")], {}, set(), [("missing-kept-file", rel("a.pkg"))]),
    ([ref("a.pkg")], {rel("a.pkg"): "bb"}, set(), [("bad-sha256", rel("a.pkg"))]),
    # a desc without a sha256 cannot be compared
    ([ref("a.pkg", sha="")], {rel("a.pkg"): "bb"}, set(), []),
    ([], {rel("x.pkg"): "cc"}, {rel("x.pkg.sig"), rel("y.pkg.sig")},
     [("orphan", rel("x.pkg")), ("orphan", rel("x.pkg.sig")), ("orphan", rel("y.pkg.sig"))]),
    # one file for a package and a kept version of it (a rollback's): one line at most
    ([ref("a.pkg"), ref("a.pkg", kind="kept")], {}, set(),
     [("missing-file", rel("a.pkg")), ("missing-kept-file", rel("a.pkg"))]),
])
def test_file_problems(refs, disk, sigs, expected):
    known = {r.relpath for r in refs}
    found = file_problems(refs, disk, sigs, known)
    assert [(p.kind, p.path) for p in found] == expected


def test_a_file_only_the_other_read_of_the_db_names_is_no_orphan():
    found = file_problems([], {rel("new.pkg"): "aa"}, set(), known={rel("new.pkg")})
    assert found == []


def state(generation: int, written: int, *entries: str) -> ArchRepoState:
    return ArchRepoState(REPO, ARCH, generation, written, frozenset(entries))


@pytest.mark.parametrize("first, second, served, expected", [
    (state(3, 3, "a-1"), state(3, 3, "a-1"), frozenset({"a-1"}), None),
    (state(3, 3, "a-1"), state(3, 3, "a-1"), None, "missing-archive"),
    (state(4, 3, "a-1"), state(4, 3, "a-1"), frozenset({"a-1"}), "stale-archive"),
    (state(3, 3, "a-1", "b-1"), state(3, 3, "a-1", "b-1"), frozenset({"a-1"}), "stale-archive"),
    # a server at work writes what is not written yet
    (state(4, 3, "a-1"), state(4, 3, "a-1"), frozenset({"a-1"}), "running"),
    # a publish between the two reads: the archive matches the second one
    (state(3, 3, "a-1"), state(4, 4, "a-1", "b-1"), frozenset({"a-1", "b-1"}), None),
    (state(3, 3, "a-1"), state(4, 4, "a-1", "b-1"), frozenset({"a-1"}), None),
])
def test_archive_problems(first, second, served, expected):
    running = expected == "running"
    found = archive_problems([first], {(REPO, ARCH): second}, {(REPO, ARCH): served},
                             running=running)
    assert [p.kind for p in found] == ([] if expected in (None, "running") else [expected])
    if running:  # the same on a stopped server is stale
        assert archive_problems([first], {(REPO, ARCH): second}, {(REPO, ARCH): served})


def test_an_arch_repo_removed_between_the_reads_is_not_reported():
    assert archive_problems([state(3, 3, "a-1")], {}, {(REPO, ARCH): None}) == []


# -- with a real server -----------------------------------------------------------------

def cli(server: ServerProcess, *args: str, data_dir: Path | None = None
        ) -> subprocess.CompletedProcess:
    env = server.env()
    if data_dir is not None:
        env["VIETER_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "vieter_lite", *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


class Publisher:
    def __init__(self, server: ServerProcess, work: Path):
        self.server, self.work = server, work
        work.mkdir(exist_ok=True)
        self.count = 0

    def make(self, name: str, version: str) -> Path:
        return make_synthetic_package(
            self.work / f"{name}-{version}-{ARCH}.pkg.tar.zst",
            {"pkgname": name, "pkgver": version, "arch": ARCH},
            {f"usr/share/{name}/{version}": os.urandom(64)})

    def publish(self, name: str, version: str, repo: str = REPO) -> str:
        path = self.make(name, version)
        req = urllib.request.Request(f"{self.server.url}/{repo}/publish",
                                     data=path.read_bytes(), method="POST",
                                     headers={"X-Api-Key": API_KEY})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200
        self.count += 1
        return path.name


def backed_up_db_files(dest: Path) -> list[tuple[str, str, str]]:
    """(relpath, desc sha256, kind) of every file the backed-up db names."""
    conn = sqlite3.connect(dest / "vieter.sqlite")
    try:
        rows = conn.execute("SELECT repo, arch, filename, desc, 'package' FROM packages "
                            "UNION ALL SELECT repo, arch, filename, desc, 'kept' "
                            "FROM kept_packages").fetchall()
    finally:
        conn.close()
    out = []
    for repo, arch, filename, desc, kind in rows:
        lines = desc.split("\n")
        out.append((f"{repo}/{arch}/{filename}", lines[lines.index("%SHA256SUM%") + 1], kind))
    return out


def sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.integration
def test_a_backup_taken_while_publishes_go_on_holds_every_file_its_db_names(tmp_path):
    server = ServerProcess(tmp_path / "data",
                           env_extra={"VIETER_KEEP_VERSIONS": "1"}).start()
    publisher = Publisher(server, tmp_path / "pkgs")
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish_forever() -> None:
        version = 0
        try:
            while not stop.is_set():
                version += 1
                for name in ("alpha", "beta", "gamma"):
                    publisher.publish(name, f"{version}-1")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    try:
        publisher.publish("alpha", "0-1")
        publisher.publish("alpha", "0.1-1")  # 0-1 kept from the start
        thread = threading.Thread(target=publish_forever)
        thread.start()
        dests = []
        try:
            for i in range(3):
                dest = tmp_path / f"backup{i}"
                before = publisher.count
                done = cli(server, "backup", str(dest))
                assert done.returncode == 0, done.stdout + done.stderr
                dests.append((dest, before, publisher.count))
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not errors, (errors, server.log()[-3000:])
        for dest, before, after in dests:
            assert not (dest.parent / (dest.name + ".tmp")).exists()
            manifest = json.loads((dest / "manifest.json").read_text())
            for rel_path, digest in manifest["files"].items():
                assert sha256(dest / rel_path) == digest, rel_path
            named = backed_up_db_files(dest)
            assert {k for _, _, k in named} == {"package", "kept"}
            for rel_path, digest, _ in named:
                assert sha256(dest / "pkgs" / rel_path) == digest, rel_path
            # nothing besides what the db names (and signatures)
            on_disk = {str(p.relative_to(dest / "pkgs")) for p in (dest / "pkgs").rglob("*")
                       if p.is_file()}
            assert on_disk == {r for r, _, _ in named}
            print(f"backup {dest.name}: {manifest['packages']} packages, "
                  f"{len(manifest['files'])} files, {manifest['db_snapshots']} db snapshots; "
                  f"publishes during it: {after - before}")
        assert publisher.count > 4  # the publisher did run beside the backups
        # a backup's DEST must be new
        again = cli(server, "backup", str(dests[0][0]))
        assert again.returncode == 1 and "is not empty" in again.stderr
    finally:
        server.stop()


@pytest.mark.integration
def test_restore_refuses_a_running_server_a_used_data_dir_and_a_damaged_backup(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        Publisher(server, tmp_path / "pkgs").publish("alpha", "1-1")
        dest = tmp_path / "backup"
        assert cli(server, "backup", str(dest)).returncode == 0
        running = cli(server, "restore", str(dest), "--force")
        assert running.returncode == 1 and "a server is running" in running.stderr
    finally:
        server.stop()
    used = cli(server, "restore", str(dest))
    assert used.returncode == 1 and "give --force" in used.stderr
    fresh = tmp_path / "fresh"
    pkg = next((dest / "pkgs").rglob("*.pkg.tar.zst"))
    data = bytearray(pkg.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pkg.write_bytes(bytes(data))
    damaged = cli(server, "restore", str(dest), data_dir=fresh)
    assert damaged.returncode == 1
    assert "sha256 differs from the manifest" in damaged.stderr
    assert not fresh.exists() or not any(fresh.rglob("*"))


def problems(server: ServerProcess, *extra: str) -> tuple[int, dict]:
    done = cli(server, "check", "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def kinds(report: dict, key: str = "problems") -> set[tuple[str, str]]:
    return {(p["kind"], p["path"]) for p in report[key]}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and "gnupg" not in p.parts
            and p.name != "server.lock"}


@pytest.mark.integration
def test_check_finds_each_kind_of_damage_and_repair_leaves_the_data_dir_clean(tmp_path):
    server = ServerProcess(tmp_path / "data", env_extra={"VIETER_SIGN": "true",
                                                         "VIETER_KEEP_VERSIONS": "1"}).start()
    publisher = Publisher(server, tmp_path / "pkgs")
    pkgs = server.data_dir / "pkgs" / REPO / ARCH
    repos = server.data_dir / "repos" / REPO / ARCH
    try:
        gone = publisher.publish("gone", "1-1")
        kept_file = publisher.publish("kept", "1-1")
        publisher.publish("kept", "2-1")
        damaged = publisher.publish("damaged", "1-1")
        badsig = publisher.publish("badsig", "1-1")
        old_db = (repos / f"{REPO}.db.tar.gz").read_bytes()
        publisher.publish("late", "1-1")
        code, report = problems(server)
        assert code == 0 and report["problems"] == [], report
        assert report["signatures_checked"] >= 7
    finally:
        assert server.stop() == 0
    (pkgs / gone).unlink()
    (pkgs / kept_file).unlink()
    data = bytearray((pkgs / damaged).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (pkgs / damaged).write_bytes(bytes(data))
    sig = bytearray((pkgs / (badsig + ".sig")).read_bytes())
    sig[-5] ^= 0xFF
    (pkgs / (badsig + ".sig")).write_bytes(bytes(sig))
    (pkgs / "stray-1-1-x86_64.pkg.tar.zst").write_bytes(b"no row names me")
    (pkgs / ".tmp.0123abcd").write_bytes(b"half a link")
    (server.data_dir / "tmp" / "upload-0123abcd").write_bytes(b"half an upload")
    current_db = repos / ".current" / f"{REPO}.db.tar.gz"
    os.chmod(current_db, 0o644)
    current_db.write_bytes(old_db)  # the archive before the last publish: stale

    before = tree(server.data_dir)
    code, report = problems(server)
    assert code == 1
    assert tree(server.data_dir) == before  # without --repair nothing is written
    dbfile = f"repos/{REPO}/{ARCH}/{REPO}.db.tar.gz"
    assert kinds(report) == {
        ("missing-file", rel(gone)),
        ("missing-kept-file", rel(kept_file)),
        ("bad-sha256", rel(damaged)),
        ("bad-signature", rel(badsig + ".sig")),
        ("orphan", rel("stray-1-1-x86_64.pkg.tar.zst")),
        ("temp-file", rel(".tmp.0123abcd")),
        ("temp-file", "tmp/upload-0123abcd"),
        ("stale-archive", dbfile),
        # the old archive does not match the signature of the current generation
        ("bad-signature", f"repos/{REPO}/{ARCH}/.current/{REPO}.db.tar.gz.sig"),
    }
    text = cli(server, "check")
    assert text.returncode == 1
    assert f"missing-file {rel(gone)}: the file of package gone 1-1" in text.stdout

    code, repaired = problems(server, "--repair")
    assert code == 0 and repaired["remaining"] == [], repaired
    assert any("removed gone 1-1" in line for line in repaired["repaired"])
    assert any(f"signed {rel(badsig)} again" in line for line in repaired["repaired"])
    code, after = problems(server)
    assert code == 0 and after["problems"] == [], after

    # the served db names neither package whose file was lost, and has the late one
    import tarfile
    with tarfile.open(repos / f"{REPO}.db.tar.gz") as tar:
        entries = {m.name.split("/")[0] for m in tar.getmembers()}
    assert entries == {"kept-2-1", "badsig-1-1", "late-1-1"}
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/{REPO}/{ARCH}/{badsig}") as resp:
            assert resp.status == 200
    finally:
        server.stop()


@pytest.mark.integration
def test_check_beside_running_publishes_reports_nothing(tmp_path):
    server = ServerProcess(tmp_path / "data",
                           env_extra={"VIETER_KEEP_VERSIONS": "1"}).start()
    publisher = Publisher(server, tmp_path / "pkgs")
    stop = threading.Event()

    def publish_forever() -> None:
        version = 0
        while not stop.is_set():
            version += 1
            for name in ("alpha", "beta"):
                publisher.publish(name, f"{version}-1")

    thread = threading.Thread(target=publish_forever)
    try:
        publisher.publish("alpha", "0-1")
        thread.start()
        for _ in range(3):
            before = publisher.count
            code, report = problems(server)
            assert (code, report["problems"]) == (0, []), report
            print(f"check beside publishes: {publisher.count - before} publishes during it")
    finally:
        stop.set()
        thread.join(timeout=60)
        server.stop()


@pytest.mark.integration
def test_check_refuses_to_repair_beside_a_running_server(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        Publisher(server, tmp_path / "pkgs").publish("alpha", "1-1")
        (server.data_dir / "pkgs" / REPO / ARCH / "stray.pkg.tar.zst").write_bytes(b"x")
        done = cli(server, "check", "--repair")
        assert done.returncode == 2 and "stop it before check --repair" in done.stderr
        assert (server.data_dir / "pkgs" / REPO / ARCH / "stray.pkg.tar.zst").exists()
    finally:
        server.stop()


def test_a_file_replaced_after_the_db_snapshot_makes_the_backup_take_the_db_again(
        services, tmp_path, monkeypatch):
    """A publish between the db snapshot and the file copy removes the file the snapshot
    names (keep_versions = 0): the backup takes the db again and holds the new version."""
    from vieter_lite import backup

    def upload(version: str) -> Path:
        return make_synthetic_package(
            tmp_path / f"up-{version}.pkg", {"pkgname": "alpha", "pkgver": version,
                                             "arch": ARCH},
            {"usr/share/alpha/VERSION": version.encode()})

    services.store.publish(REPO, upload("1-1"))
    snapshot = backup._snapshot_db
    taken: list[int] = []

    def snapshot_then_publish(source: Path, dest: Path) -> None:
        snapshot(source, dest)
        taken.append(1)
        if len(taken) == 1:
            services.store.publish(REPO, upload("2-1"))

    monkeypatch.setattr(backup, "_snapshot_db", snapshot_then_publish)
    result = backup.backup(services.config, tmp_path / "backup")
    assert (result.attempts, result.missing) == (2, [])
    dest = tmp_path / "backup"
    assert [r for r, _, _ in backed_up_db_files(dest)] == [rel("alpha-2-1-x86_64.pkg.tar.zst")]
    assert sorted(p.name for p in (dest / "pkgs" / REPO / ARCH).iterdir()) == \
        ["alpha-2-1-x86_64.pkg.tar.zst"]


@pytest.mark.integration
def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path):
    first = ServerProcess(tmp_path / "data").start()
    try:
        with pytest.raises(RuntimeError, match="is in use by another vieter-lite server"):
            ServerProcess(tmp_path / "data").start()
        with urllib.request.urlopen(first.url + "/health") as resp:
            assert resp.status == 200
    finally:
        assert first.stop() == 0


def test_build_logs_go_into_the_backup_and_come_back_with_restore(services, tmp_path):
    from conftest import make_config
    from vieter_lite import backup

    (services.config.data_dir / "logs" / "7.log").write_bytes(b"==> Making package\n")
    make_synthetic_package(tmp_path / "up.pkg", {"pkgname": "alpha", "pkgver": "1-1",
                                                 "arch": ARCH})
    services.store.publish(REPO, tmp_path / "up.pkg")
    dest = tmp_path / "backup"
    backup.backup(services.config, dest)
    assert "logs/7.log" in json.loads((dest / "manifest.json").read_text())["files"]
    without = tmp_path / "no-logs"
    backup.backup(services.config, without, logs=False)
    assert not (without / "logs").exists()

    other = tmp_path / "other"
    other.mkdir()
    fresh = make_config(other, pkg_dir=str(tmp_path / "elsewhere"))
    assert backup.restore(fresh, dest) == 3  # the db, the package, the log
    assert (fresh.data_dir / "logs" / "7.log").read_bytes() == b"==> Making package\n"
    assert (tmp_path / "elsewhere" / REPO / ARCH / "alpha-1-1-x86_64.pkg.tar.zst").is_file()
    with pytest.raises(backup.BackupError, match="give --force"):
        backup.restore(fresh, dest)
    (fresh.data_dir / "logs" / "8.log").write_bytes(b"a later log\n")
    backup.restore(fresh, dest, force=True)
    assert sorted(p.name for p in (fresh.data_dir / "logs").iterdir()) == ["7.log"]
