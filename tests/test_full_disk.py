"""A data disk that fills up: a real server on a small tmpfs answers 507 with the reason,
keeps everything it acknowledged (package files and rows, the served db archives and
their signatures), leaves no temp files, and works again once space is freed, without a
restart. Also what else writes signatures or copies of them on a full disk: signing an
existing repo at start, check --repair, backup and restore."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import API_KEY, ROOT, ServerProcess, make_config
from gpgkeys import gpg_available, stop_agents, verify
from pacman_client import PacmanClient, pacman_available
from pkgfactory import make_synthetic_package
from vieter_lite import backup, diskspace, errors, gpg
from vieter_lite.config import ServerConfig
from vieter_lite.db import Database
from vieter_lite.gpg import GpgError, GpgNoSpace
from vieter_lite.repo.signature_sync import SignatureSync
from vieter_lite.repo.signing import signature_path
from vieter_lite.services import Services, build_services, start_signer
from vieter_lite.targets import TargetSpec

DISK_SIZE = 24 << 20
PAGE = 4096
BIG = 1 << 20  # incompressible bytes in the package that does not fit
NO_SPACE = "no space left on the data disk"
WAIT = 20.0


class Disk:
    """A tmpfs mounted at `root`; fill() leaves exactly `leave` bytes (whole pages) free."""

    def __init__(self, root: Path):
        self.root = root
        self.filler = root / "filler"

    def available(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def fill(self, leave: int = 0) -> None:
        with open(self.filler, "ab", buffering=0) as out:
            for block in (b"\xff" * (1 << 20), b"\xff" * PAGE):
                while True:
                    try:
                        out.write(block)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
                        break
            size = out.tell()
            out.truncate(max(0, size - _pages(leave)))
        assert self.available() == _pages(leave)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


def _pages(size: int) -> int:
    return -(-size // PAGE) * PAGE


def _mount_or_skip(mount: Path, size: int = DISK_SIZE, inodes: int | None = None) -> None:
    """Mount the tmpfs (`inodes`: at most that many files, the root directory counted);
    without root, skip outside CI (and fail in CI, which runs as root)."""
    why = None
    options = f"size={size},mode=0755" + (f",nr_inodes={inodes}" if inodes else "")
    if os.geteuid() != 0:
        why = "mounting a tmpfs needs root"
    else:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            why = f"cannot mount a tmpfs: {done.stderr.strip()}"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must run these tests as root)")
        pytest.skip(why)


@contextlib.contextmanager
def mounted(mount: Path, size: int = DISK_SIZE, inodes: int | None = None) -> Iterator[Disk]:
    mount.mkdir()
    _mount_or_skip(mount, size, inodes)
    try:
        yield Disk(mount)
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    with mounted(tmp_path / "data") as data:
        yield data


@pytest.fixture
def server(disk: Disk) -> Iterator[ServerProcess]:
    """A server on the small disk, without the free-space guard: the disk fills mid-write."""
    proc = ServerProcess(disk.root, env_extra={"VIETER_MIN_FREE_SPACE": "0"}).start()
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        assert proc.stop() == 0, proc.log()


def request(proc: ServerProcess, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=WAIT)
    try:
        conn.request(method, path, body=body,
                     headers={"X-Api-Key": API_KEY, **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data


def package(tmp_path: Path, version: str, payload: bytes) -> bytes:
    path = tmp_path / f"hello-{version}-x86_64.pkg.tar.zst"
    make_synthetic_package(path, {"pkgname": "hello", "pkgver": version, "arch": "x86_64",
                                  "size": str(len(payload))},
                           {"usr/share/hello/blob": payload})
    return path.read_bytes()


def publish(proc: ServerProcess, body: bytes) -> tuple[int, Any]:
    return request(proc, "POST", "/core/publish", body)


def served_db(proc: ServerProcess) -> bytes:
    status, body = request(proc, "GET", "/core/x86_64/core.db")
    assert status == 200
    return bytes(body)


def db_entries(archive: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name.split("/")[0] for m in tar.getmembers()}


def rows(data_dir: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{data_dir / 'vieter.sqlite'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT filename, version FROM packages").fetchall())
    finally:
        conn.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(data_dir: Path) -> list[str]:
    """Temp files and partial archive generations anywhere in the data dir."""
    found = [str(p) for p in (data_dir / "tmp").iterdir()]
    found += [str(p) for p in data_dir.rglob(".tmp*")]
    return found


def generations(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "repos" / "core" / "x86_64").glob(".g*")}


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT} s: {what}"
        time.sleep(0.2)


def restart_wal(data_dir: Path) -> None:
    """Checkpoint sqlite's WAL so the server's next transactions reuse its space: the
    disk can then fill up after sqlite commits (at the db archive) and not before."""
    conn = sqlite3.connect(data_dir / "vieter.sqlite")
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        conn.close()
    assert busy == 0
    assert (data_dir / "vieter.sqlite-wal").stat().st_size > 64 * PAGE


# where the disk fills up: how much room is left before publishing the new version
# (which needs its body spooled by waitress, its upload copy, sqlite, then the archives)
WHERE = {
    "request body": lambda size: size // 2,
    "upload file": lambda size: _pages(size) + size // 2,
    "sqlite row": lambda size: 2 * _pages(size) + PAGE,
    "db archive": lambda size: 2 * _pages(size),
}


@pytest.mark.parametrize("where", list(WHERE))
def test_a_publish_that_fills_the_disk_keeps_what_was_there(server, disk, tmp_path, where):
    data = disk.root
    old = package(tmp_path, "1.0-1", b"old version")
    assert publish(server, old)[0] == 200
    old_file = data / "pkgs" / "core" / "x86_64" / "hello-1.0-1-x86_64.pkg.tar.zst"
    old_sha, db_before, gens = sha(old_file), served_db(server), generations(data)
    new = package(tmp_path, "2.0-1", os.urandom(BIG))
    if where == "db archive":
        restart_wal(data)
    disk.fill(leave=WHERE[where](len(new)))

    status, body = publish(server, new)

    assert status == 507, body
    assert NO_SPACE in body["message"]
    assert served_db(server) == db_before  # the last good db, whole
    assert generations(data) == gens  # no partial generation
    assert sha(old_file) == old_sha
    assert leftovers(data) == []
    if where == "db archive":
        # committed: the answer says so, and the old file stays while the old db is served
        assert "hello 2.0-1 is published in core" in body["message"]
        assert set(rows(data).values()) == {"2.0-1"}
    else:
        assert rows(data) == {old_file.name: "1.0-1"}
        assert sorted(p.name for p in old_file.parent.iterdir()) == [old_file.name]

    disk.free()
    if where != "db archive":
        assert publish(server, new)[0] == 200
    # the archive writer writes what a full disk held back, without a new request
    wait_for(lambda: db_entries(served_db(server)) == {"hello-2.0-1"}, "the new db served")
    wait_for(lambda: not old_file.exists(), "the replaced file removed")
    assert leftovers(data) == []
    if pacman_available():
        client = PacmanClient(tmp_path / "root", {"core": f"{server.url}/$repo/$arch"})
        client.sync_db()
        assert "core hello 2.0-1" in client.run("-Sl", "core").stdout
        client.install("hello")
    assert server.proc is not None and server.proc.poll() is None  # no restart


@pytest.fixture
def signed_server(disk: Disk) -> Iterator[ServerProcess]:
    """A signing server (sign = true, its key in the data dir) on the small disk."""
    if not gpg_available():
        pytest.skip("gpg, gpgv or gpg-agent missing")
    proc = ServerProcess(disk.root, env_extra={"VIETER_MIN_FREE_SPACE": "0",
                                               "VIETER_SIGN": "true"}).start()
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        assert proc.stop() == 0, proc.log()


def served(proc: ServerProcess, name: str) -> bytes:
    status, body = request(proc, "GET", f"/core/x86_64/{name}")
    assert status == 200, (name, status)
    return bytes(body)


@contextlib.contextmanager
def trusting_pacman(proc: ServerProcess) -> Iterator[PacmanClient]:
    """pacman in a private root whose keyring trusts the server's key (`vieter-lite client
    setup`), with `SigLevel = Required` for the repo."""
    root = Path(tempfile.mkdtemp(prefix="vlp", dir="/tmp"))  # gpg's sockets: a short path
    client = PacmanClient(root, {})
    gpgdir = root / "etc/pacman.d/gnupg"
    try:
        subprocess.run(["pacman-key", "--config", str(client.conf), "--gpgdir", str(gpgdir),
                        "--init"], check=True, capture_output=True, timeout=120)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
        subprocess.run([sys.executable, "-m", "vieter_lite", "client", "setup", proc.url,
                        "core", "--pacman-conf", str(client.conf), "--gpgdir", str(gpgdir)],
                       check=True, capture_output=True, timeout=120,
                       env={**env, "PYTHONPATH": str(ROOT)})
        assert "[core]\nSigLevel = Required\n" in client.conf.read_text()
        yield client
    finally:
        stop_agents(gpgdir)
        shutil.rmtree(root, ignore_errors=True)


# signing: where the disk fills up, as room left before publishing the new version. The
# package's signature is written after waitress's copy of the body and the upload file;
# the db archives' after both archives (a page each), with sqlite's WAL reused
SIGNED_WHERE = {
    "package signature": lambda size: 2 * _pages(size),
    "db signature": lambda size: 2 * _pages(size) + 3 * PAGE,
}


@pytest.mark.parametrize("where", list(SIGNED_WHERE))
def test_a_signature_that_does_not_fit_is_a_507_and_keeps_what_was_there(
        signed_server, disk, tmp_path, where):
    """gpg that finds no room for a signature (the package's before the publish is done,
    a db archive's after it is committed) is a full disk like any other write, not a 500."""
    server, data = signed_server, disk.root
    arch_dir = data / "pkgs" / "core" / "x86_64"
    old_file = arch_dir / "hello-1.0-1-x86_64.pkg.tar.zst"
    assert publish(server, package(tmp_path, "1.0-1", b"old version"))[0] == 200
    files_before = {p.name: sha(p) for p in arch_dir.iterdir()}
    assert set(files_before) == {old_file.name, old_file.name + ".sig"}
    served_before = {name: served(server, name) for name in
                     ("core.db", "core.db.sig", "core.files", "core.files.sig")}
    gens = generations(data)
    new = package(tmp_path, "2.0-1", os.urandom(BIG))
    if where == "db signature":
        restart_wal(data)
    disk.fill(leave=SIGNED_WHERE[where](len(new)))

    status, body = publish(server, new)

    assert status == 507, body
    assert {name: served(server, name) for name in served_before} == served_before
    assert generations(data) == gens  # no partial generation
    assert leftovers(data) == []
    files_now = {p.name: sha(p) for p in arch_dir.iterdir()}
    if where == "package signature":
        # nothing of the publish was done: no row, no file
        assert body == {"message": f"{NO_SPACE} (writing the signature of hello 2.0-1); "
                                   "free some space and try again", "data": ""}
        assert rows(data) == {old_file.name: "1.0-1"}
        assert files_now == files_before
    else:
        # committed, and the answer says so; the files the served db names stay, and the
        # archives come once there is room
        assert body["message"].startswith(
            f"hello 2.0-1 is published in core, but its db archive could not be "
            f"rewritten: {NO_SPACE}. pacman sees the last good db until space is freed")
        assert set(rows(data).values()) == {"2.0-1"}
        assert {k: files_now.get(k) for k in files_before} == files_before
        assert "the last good db archive is served until there is room (gpg --detach-sign " \
               "failed: core.db.tar.gz: " in server.log()
    assert "Traceback" not in server.log()

    disk.free()
    if where == "package signature":
        assert publish(server, new)[0] == 200
    # the archive writer writes (and signs) what a full disk held back, without a request
    wait_for(lambda: db_entries(served(server, "core.db")) == {"hello-2.0-1"},
             "the new db served")
    wait_for(lambda: not old_file.exists(), "the replaced file removed")
    assert leftovers(data) == []
    key = request(server, "GET", "/key")[1]
    new_name = "hello-2.0-1-x86_64.pkg.tar.zst"
    for name, signed in [("core.db", served(server, "core.db")),
                         ("core.files", served(server, "core.files")),
                         (new_name, served(server, new_name))]:
        valid, status_lines = verify(key, served(server, name + ".sig"), signed)
        assert valid, (name, status_lines)
    if pacman_available() and shutil.which("pacman-key"):
        with trusting_pacman(server) as client:
            client.sync_db()
            assert "core hello 2.0-1" in client.run("-Sl", "core").stdout
            client.install("hello")
    assert server.proc is not None and server.proc.poll() is None  # no restart


def test_a_chunked_publish_that_fills_the_disk_is_answered(server, disk, tmp_path):
    """waitress spools a chunked body before the app sees it: a full disk there is a 507
    too, not a connection dropped without an answer."""
    db_before = served_db_or_none(server)
    disk.fill(leave=64 * PAGE)
    body = package(tmp_path, "1.0-1", os.urandom(BIG))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
    try:
        conn.request("POST", "/core/publish", body=iter([body[i:i + 65536] for i in
                                                         range(0, len(body), 65536)]),
                     headers={"X-Api-Key": API_KEY}, encode_chunked=True)
        resp = conn.getresponse()
        status, answer = resp.status, json.loads(resp.read())
    finally:
        conn.close()
    assert status == 507
    assert answer == {"message": f"{NO_SPACE} (receiving the request body); free some space "
                                 "and try again", "data": ""}
    assert served_db_or_none(server) == db_before
    disk.free()
    wait_for(lambda: disk.available() > DISK_SIZE // 2, "the spooled body's space freed")
    assert publish(server, body)[0] == 200


def served_db_or_none(proc: ServerProcess) -> bytes | None:
    status, body = request(proc, "GET", "/core/x86_64/core.db")
    return bytes(body) if status == 200 else None


def claim(proc: ServerProcess) -> dict:
    _, target = request(proc, "POST", "/api/v1/targets?kind=git&url=https://e.org/p.git"
                                      "&repo=core&arch=x86_64&schedule=0+3+1+1")
    _, queued = request(proc, "POST", f"/api/v1/jobs/queue?target={target['data']}"
                                      "&arch=x86_64")
    _, polled = request(proc, "GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2")
    (job,) = polled["data"]
    assert job["build_id"] == queued["data"]
    return dict(job)


def append_v1(proc: ServerProcess, job: dict, text: bytes) -> tuple[int, Any]:
    return request(proc, "POST", f"/api/v1/builds/{job['build_id']}/log", text,
                   {"X-Api-Key": job["token"]})


def append_v2(proc: ServerProcess, job: dict, text: bytes) -> tuple[int, Any]:
    return request(proc, "PATCH", f"/api/v2/builds/{job['build_id']}/log",
                   json.dumps({"append": text.decode()}).encode(),
                   {"Content-Type": "application/json"})


@pytest.mark.parametrize("append", [append_v1, append_v2], ids=["v1 POST", "v2 PATCH"])
@pytest.mark.parametrize("room", [0, 8 * PAGE], ids=["full", "a little room"])
def test_a_log_append_that_fills_the_disk_leaves_the_log_as_it_was(server, disk, append,
                                                                   room):
    job = claim(server)
    log_path = disk.root / "logs" / f"{job['build_id']}.log"
    assert append(server, job, b"first line\n")[0] == 200
    before = log_path.read_bytes()
    chunk = b"".join(b"line %d of a chunk that does not fit\n" % i for i in range(8000))
    disk.fill(leave=room)

    status, body = append(server, job, chunk)

    assert status == 507, body
    text = body["message"] if append is append_v1 else body["errors"][0]["detail"]
    assert NO_SPACE in text
    if append is append_v2:
        assert body["errors"][0]["title"] == "CF-InsufficientStorage"
    assert log_path.read_bytes() == before
    disk.free()
    assert append(server, job, chunk)[0] == 200
    assert log_path.read_bytes() == before + chunk
    status, content = request(server, "GET", f"/api/v1/logs/{job['build_id']}/content")
    assert status == 200 and content == before + chunk


def test_sqlite_on_a_full_disk_is_a_507_in_each_api(server, disk):
    assert request(server, "POST", "/api/v1/targets?kind=git&url=https://e.org/a.git"
                                   "&repo=core&arch=x86_64")[0] == 200
    disk.fill()

    v1_status, v1_body = request(server, "POST", "/api/v1/targets?kind=git"
                                                 "&url=https://e.org/b.git&repo=core")
    v2_status, v2_body = request(server, "POST", "/api/v2/targets",
                                 json.dumps({"kind": "git", "url": "https://e.org/c.git",
                                             "repo": "core"}).encode(),
                                 {"Content-Type": "application/json"})

    assert (v1_status, v2_status) == (507, 507)
    assert v1_body["message"].startswith(NO_SPACE)
    assert v2_body["errors"][0]["code"] == 10016
    assert v2_body["errors"][0]["detail"].startswith(NO_SPACE)
    disk.free()
    assert request(server, "POST", "/api/v1/targets?kind=git&url=https://e.org/b.git"
                                   "&repo=core")[0] == 200
    _, listed = request(server, "GET", "/api/v1/targets")
    assert [t["url"] for t in listed["data"]] == ["https://e.org/a.git",
                                                  "https://e.org/b.git"]



@pytest.mark.parametrize("free, length, margin, missing", [
    (100, 10, 50, 0),          # 2 x 10 + 50 fits in 100
    (70, 10, 50, 0),           # exactly
    (69, 10, 50, 1),
    (0, None, 50, 50),         # chunked: the margin alone
    (10, 1000, 0, 1990),       # no margin: both copies still count
])
def test_shortfall(free, length, margin, missing):
    assert diskspace.shortfall(free, length, margin) == missing


def test_an_upload_that_would_leave_too_little_room_is_refused_before_its_body(disk,
                                                                               tmp_path):
    margin = 4 << 20
    proc = ServerProcess(disk.root, env_extra={"VIETER_MIN_FREE_SPACE": str(margin)}).start()
    try:
        small = package(tmp_path, "1.0-1", b"small")
        assert publish(proc, small)[0] == 200
        disk.fill(leave=12 << 20)
        announced = 5 << 20  # 2 x 5 MiB + 4 MiB > 12 MiB
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(f"POST /core/publish HTTP/1.1\r\nHost: x\r\nX-Api-Key: {API_KEY}\r\n"
                         f"Content-Length: {announced}\r\n\r\n".encode())
            sock.settimeout(WAIT)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 507 ")
        message = json.loads(body)["message"]
        assert message.startswith(f"{NO_SPACE} for this upload: 12.0 MiB free, 2 x the body "
                                  "(5.0 MiB) + min_free_space (4.0 MiB) needed")
        assert disk.available() == 12 << 20  # not a byte of the body was spooled
        # one that leaves the margin goes through
        fits = package(tmp_path, "2.0-1", os.urandom(1 << 20))
        assert publish(proc, fits)[0] == 200
    finally:
        assert proc.stop() == 0


def test_a_transaction_on_a_full_disk_raises_sqlite_full_and_ends(disk):
    """A transaction larger than sqlite's page cache writes to the WAL before COMMIT, and
    sqlite rolls it back itself on SQLITE_FULL: the error that reaches the route is the
    full disk (not "cannot rollback"), and no transaction stays open."""
    db = Database(disk.root / "vieter.sqlite")
    try:
        db._run("CREATE TABLE blobs (data BLOB)")
        disk.fill()
        with pytest.raises(sqlite3.OperationalError) as caught, db.transaction():
            for _ in range(1200):  # 1200 x 4 KiB spill sqlite's 2 MiB page cache
                db._run("INSERT INTO blobs VALUES (?)", os.urandom(PAGE))
        assert errors.full_disk(caught.value) is not None, caught.value
        assert not db._conn.in_transaction
        disk.free()
        with db.transaction():
            db._run("INSERT INTO blobs VALUES (?)", b"fits")
        assert db._one("SELECT count(*) FROM blobs")[0] == 1
    finally:
        db.close()


def test_the_scheduler_thread_outlives_a_full_disk(disk, tmp_path, caplog):
    """A due build that sqlite cannot record is queued once there is room: the scheduler
    thread (which stops the server when it dies) logs the full disk and goes on."""
    svc = build_services(make_config(tmp_path).replace(data_dir=disk.root,
                                                      pkg_dir=disk.root / "pkgs"))
    stop = threading.Event()
    try:
        target = svc.targets.add(TargetSpec(kind="git", url="https://e.org/p.git", repo="core",
                                            schedule="0 3", archs=("x86_64",)))
        svc.db._run("UPDATE target_archs SET next_run = 0 WHERE target_id = ?", target)
        disk.fill()
        thread = threading.Thread(target=svc.scheduler.run, args=(stop,), daemon=True)
        thread.start()
        wait_for(lambda: "scheduler: no space left on the data disk" in caplog.text,
                 "the scheduler meets the full disk")
        assert svc.db.builds(target=target) == []
        disk.free()
        wait_for(lambda: len(svc.db.builds(target=target)) == 1, "the build queued")
        assert thread.is_alive()
    finally:
        stop.set()
        svc.db.close()


def test_a_server_started_on_a_full_disk_says_so_in_one_line(disk, tmp_path):
    proc = ServerProcess(disk.root, env_extra={"VIETER_MIN_FREE_SPACE": "0"}).start()
    assert publish(proc, package(tmp_path, "1.0-1", b"kept"))[0] == 200
    assert proc.stop() == 0
    disk.fill()
    again = ServerProcess(disk.root)
    with pytest.raises(RuntimeError, match="server exited with 1"):
        again.start()
    assert f"vieter-lite: cannot open {disk.root / 'vieter.sqlite'}: {NO_SPACE}" in again.log()
    assert "Traceback" not in again.log()
    disk.free()
    again.start()
    try:
        assert db_entries(served_db(again)) == {"hello-1.0-1"}
    finally:
        assert again.stop() == 0


@pytest.mark.parametrize("exc, full", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (sqlite3.OperationalError("database or disk is full"), True),
    (sqlite3.OperationalError("database is locked"), False),
    (errors.InsufficientStorage("already one"), True),
    (ValueError("no space left on device"), False),
    (GpgNoSpace(errno.ENOSPC, "gpg --detach-sign failed: ..."), True),
    (GpgNoSpace(errno.EDQUOT, "gpg --detach-sign failed: ..."), True),
    # the words alone do not make a full disk: gpg.failure() decides, from gpg's stderr
    (GpgError("gpg --detach-sign failed: No space left on device"), False),
])
def test_full_disk_errors(exc, full):
    found = errors.full_disk(exc, "writing it")
    assert (found is not None) == full
    if found is not None and not isinstance(exc, errors.InsufficientStorage):
        assert found.status == 507
        assert found.message == f"{NO_SPACE} (writing it); free some space and try again"


# what gpg 2.2 writes on stderr when a call fails (LC_ALL=C)
GPG_STDERR = {
    "the signature's write on a full disk": (
        b"gpg: error writing to '/d/gnupg/.#lk0x0000560a5c293350.vm.27800': No space left on "
        b"device\ngpg: can't allocate lock for '/d/gnupg/pubring.kbx'\n"
        b"gpg: /d/tmp/sig-1f2e: write error: No space left on device\n"
        b"gpg: filter_flush failed on close: No space left on device\n", errno.ENOSPC),
    "the signature's file not created (no inode left)": (
        b"gpg: can't create '/d/tmp/sig-1f2e': No space left on device\n"
        b"gpg: signing failed: No space left on device\n", errno.ENOSPC),
    "a spent quota": (
        b"gpg: /d/tmp/sig-1f2e: write error: Disk quota exceeded\n", errno.EDQUOT),
    # the lock is not fatal to gpg, but says the disk is full: a 507 asks to free space
    # first (a missing key then shows as itself)
    "a lock that did not fit, and a missing key": (
        b"gpg: error writing to '/d/gnupg/.#lk0x1': No space left on device\n"
        b"gpg: skipped \"ABCD\": No secret key\n"
        b"gpg: signing failed: No secret key\n", errno.ENOSPC),
    "another write error": (
        b"gpg: /d/tmp/sig-1f2e: write error: Input/output error\n", None),
    "a key that wants a passphrase": (
        b"gpg: signing failed: Bad passphrase\n", None),
    "a file that is gone": (
        b"gpg: can't open '/d/pkgs/x': No such file or directory\n", None),
    "nothing": (b"", None),
}


@pytest.mark.parametrize("case", GPG_STDERR)
def test_gpg_out_of_space_is_read_from_its_stderr(case):
    stderr, code = GPG_STDERR[case]
    assert gpg.no_space(stderr) == code
    err = gpg.failure("gpg --detach-sign failed: x", stderr)
    assert isinstance(err, GpgError)
    assert str(err) == "gpg --detach-sign failed: x"
    full = errors.full_disk(err, "signing it")
    if code is None:
        assert full is None and not isinstance(err, OSError)
    else:
        assert isinstance(err, GpgNoSpace) and err.errno == code
        assert full is not None and full.status == 507
        assert full.message == f"{NO_SPACE} (signing it); free some space and try again"


def test_a_package_copy_to_a_full_package_disk_leaves_no_partial_file(disk, tmp_path):
    """pkg_dir on a filesystem of its own: the package is copied there (no hard link), and
    a copy that fills that disk is a 507 that leaves no part of it behind."""
    with mounted(tmp_path / "pkgs", 4 << 20) as pkgs:
        proc = ServerProcess(disk.root, env_extra={"VIETER_MIN_FREE_SPACE": "0",
                                                   "VIETER_PKG_DIR": str(pkgs.root)}).start()
        try:
            assert publish(proc, package(tmp_path, "1.0-1", b"old version"))[0] == 200
            db_before = served_db(proc)
            new = package(tmp_path, "2.0-1", os.urandom(BIG))
            pkgs.fill(leave=BIG // 2)
            status, body = publish(proc, new)
            assert status == 507, body
            assert NO_SPACE in body["message"]
            assert served_db(proc) == db_before
            arch_dir = pkgs.root / "core" / "x86_64"
            assert sorted(p.name for p in arch_dir.iterdir()) == \
                ["hello-1.0-1-x86_64.pkg.tar.zst"]
            assert rows(disk.root) == {"hello-1.0-1-x86_64.pkg.tar.zst": "1.0-1"}
            pkgs.free()
            assert publish(proc, new)[0] == 200
            assert db_entries(served_db(proc)) == {"hello-2.0-1"}
        finally:
            assert proc.stop() == 0


def signed_services(config: ServerConfig) -> Services:
    if not gpg_available():
        pytest.skip("gpg, gpgv or gpg-agent missing")
    return build_services(config.replace(sign=True))


def close(svc: Services) -> None:
    if svc.signer is not None:
        svc.signer.close()
    svc.db.close()


def named_package(directory: Path, name: str) -> Path:
    directory.mkdir(exist_ok=True)
    return make_synthetic_package(directory / f"{name}-1.0-1-x86_64.pkg.tar.zst",
                                  {"pkgname": name, "pkgver": "1.0-1", "arch": "x86_64",
                                   "size": "6"}, {f"usr/share/{name}/hello": b"hello\n"})


def test_signing_an_existing_repo_goes_on_once_there_is_room(disk, tmp_path, caplog):
    """Signing turned on for a repo on a full disk: the signatures thread (which stops the
    server when it dies) waits, saying so once, and signs every package once there is
    room, without a restart."""
    caplog.set_level(logging.INFO, logger="vieter_lite")
    config = make_config(tmp_path).replace(data_dir=disk.root, pkg_dir=disk.root / "pkgs")
    svc = build_services(config)  # sign = false
    try:
        for name in ("one", "two", "three", "four", "five"):  # two batches of gpg
            svc.store.publish("core", named_package(tmp_path / "src", name))
    finally:
        close(svc)
    svc = signed_services(config)
    stop = threading.Event()
    try:
        files = [svc.store.package_file("core", "x86_64", p.filename)
                 for p in svc.db.packages("core", "x86_64")]
        assert files and not any(signature_path(f).exists() for f in files)
        disk.fill()
        sync = SignatureSync(svc.store, svc.signer, svc.signer.own)
        thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
        thread.start()
        wait_for(lambda: f"signatures: {NO_SPACE}: going on once there is room "
                         "(gpg --detach-sign failed: " in caplog.text,
                 "the signatures thread meets the full disk")
        assert not sync.done.is_set()
        assert not any(signature_path(f).exists() for f in files)
        disk.free()
        wait_for(sync.done.is_set, "the packages signed")
        assert "signatures: there is room again: going on" in caplog.text
        key = svc.signer.public_key
        for path in files:
            valid, status_lines = verify(key, signature_path(path).read_bytes(),
                                         path.read_bytes())
            assert valid, (path.name, status_lines)
        assert caplog.text.count(f"signatures: {NO_SPACE}") == 1
        assert not list((disk.root / "tmp").iterdir())
    finally:
        stop.set()
        close(svc)


def test_signing_on_a_full_disk_stops_start_up_with_one_line(disk, tmp_path):
    """At start gpg lists the keys and the key signs a few bytes (a key that wants a
    passphrase fails there): on a full disk start-up stops saying the disk is full, in the
    words every full-disk answer uses, not with gpg's messages alone (or as a passphrase
    problem)."""
    if not gpg_available():
        pytest.skip("gpg, gpgv or gpg-agent missing")
    config = make_config(tmp_path, sign="true").replace(data_dir=disk.root)
    first = start_signer(config)  # makes the key
    first.close()
    disk.fill()
    with pytest.raises(errors.StartupError) as caught:
        start_signer(config).close()
    assert str(caught.value).startswith(f"cannot sign (sign = true): {NO_SPACE} (")
    assert str(caught.value).endswith("; free some space and start again")
    disk.free()
    again = start_signer(config)
    try:
        assert again.fingerprint == first.fingerprint
    finally:
        again.close()


def test_check_repair_on_a_full_disk_stops_with_one_line_and_goes_on_later(tmp_path):
    """check --repair signs a package again in <data_dir>/tmp: a disk with no room there
    (here: no inode left, so gpg cannot create the file) stops it with one line, leaving
    the bad signature as it was; once there is room it repairs."""
    if not gpg_available():
        pytest.skip("gpg, gpgv or gpg-agent missing")
    server = ServerProcess(tmp_path / "data", env_extra={"VIETER_SIGN": "true"}).start()
    try:
        assert publish(server, package(tmp_path, "1.0-1", b"hello"))[0] == 200
    finally:
        assert server.stop() == 0, server.log()
    data = server.data_dir
    sig = data / "pkgs" / "core" / "x86_64" / "hello-1.0-1-x86_64.pkg.tar.zst.sig"
    damaged = bytearray(sig.read_bytes())
    damaged[-5] ^= 0xFF
    sig.write_bytes(bytes(damaged))

    def repair() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vieter_lite", "check", "--repair"],
                              env=server.env(), capture_output=True, text=True, timeout=300,
                              cwd=ROOT)

    (data / "tmp").rmdir()
    with mounted(data / "tmp", 64 << 10, inodes=1):
        stopped = repair()
        assert stopped.returncode == 1, stopped
        assert "Traceback" not in stopped.stderr
        assert f"vieter-lite: check --repair stopped: {NO_SPACE} (repairing); free some " \
               "space and try again (gpg --detach-sign failed: hello-1.0-1-x86_64.pkg.tar.zst" \
               ": gpg: can't create " in stopped.stderr
        assert "still wrong: bad-signature core/x86_64/hello-1.0-1-x86_64.pkg.tar.zst" \
               ".sig" in stopped.stdout
        assert sig.read_bytes() == damaged
    done = repair()
    assert done.returncode == 0, done
    assert "repaired: signed core/x86_64/hello-1.0-1-x86_64.pkg.tar.zst again" in done.stdout
    assert sig.read_bytes() != damaged


def signed_data_dir(tmp_path: Path) -> ServerConfig:
    """A signing server's data dir (stopped) holding one package of BIG bytes."""
    config = make_config(tmp_path)
    svc = signed_services(config)
    try:
        package(tmp_path, "2.0-1", os.urandom(BIG))  # written to tmp_path, and returned
        svc.store.publish("core", tmp_path / "hello-2.0-1-x86_64.pkg.tar.zst")
    finally:
        close(svc)
    return config


def test_a_backup_that_fills_its_disk_is_removed_and_says_so(tmp_path):
    config = signed_data_dir(tmp_path)
    with mounted(tmp_path / "backups", 4 << 20) as disk:
        dest = disk.root / "monday"
        disk.fill(leave=BIG // 2)
        with pytest.raises(backup.BackupError) as caught:
            backup.backup(config, dest)
        assert str(caught.value).startswith(f"no space left on the disk of {dest} (")
        assert str(caught.value).endswith("; the partial backup is removed: free some "
                                          "space and try again")
        assert [p.name for p in disk.root.iterdir()] == ["filler"]
        disk.free()
        backup.backup(config, dest)
        manifest = backup.read_manifest(dest)
        assert backup.verify(dest, manifest) == []
        assert "pkgs/core/x86_64/hello-2.0-1-x86_64.pkg.tar.zst.sig" in manifest["files"]


def test_a_restore_that_fills_the_disk_says_so_and_is_run_again(tmp_path):
    config = signed_data_dir(tmp_path)
    backup.backup(config, tmp_path / "monday")
    manifest = backup.read_manifest(tmp_path / "monday")
    with mounted(tmp_path / "new", 4 << 20) as disk:
        target = config.replace(data_dir=disk.root / "data", pkg_dir=disk.root / "data" / "pkgs")
        disk.fill(leave=BIG // 2)
        with pytest.raises(backup.BackupError) as caught:
            backup.restore(target, tmp_path / "monday")
        assert str(caught.value).startswith("no space left to restore into (")
        assert str(caught.value).endswith("the data dir holds no server's data yet: free some "
                                          "space and run restore again with --force")
        assert not (target.data_dir / "vieter.sqlite").exists()
        partial = {str(p.relative_to(target.data_dir)): sha(p)
                   for p in target.data_dir.rglob("*") if p.is_file()}
        assert partial and all(manifest["files"][rel] == digest
                               for rel, digest in partial.items())  # no part of a file
        disk.free()
        assert backup.restore(target, tmp_path / "monday", force=True) == \
            len(manifest["files"])
        assert sha(target.pkg_dir / "core" / "x86_64" / "hello-2.0-1-x86_64.pkg.tar.zst") \
            == manifest["files"]["pkgs/core/x86_64/hello-2.0-1-x86_64.pkg.tar.zst"]

