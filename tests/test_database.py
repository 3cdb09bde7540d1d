"""Tests for vieter_lite.repo.database: the .db/.files archive bytes, read back by tarfile, bsdtar, pacman."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from oracles import repo_add_entries, strip_md5
from pacman_client import PacmanClient, pacman_available
from pkgfactory import make_synthetic_package
from vieter_lite.repo.database import Entry, compress_segment, entry_members, write_archives, write_segments
from vieter_lite.repo.desc import render_desc, render_files
from vieter_lite.repo.package import read_package

needs_bsdtar = pytest.mark.skipif(not shutil.which("bsdtar"), reason="bsdtar missing")
needs_repo_add = pytest.mark.skipif(not shutil.which("repo-add"), reason="repo-add missing")
needs_pacman = pytest.mark.skipif(not pacman_available(), reason="pacman missing or not root")

MTIME = 1_700_000_000


def desc_for(name: str, version: str, extra: str = "") -> str:
    return (f"%FILENAME%\n{name}-{version}-any.pkg.tar.zst\n\n%NAME%\n{name}\n\n%VERSION%\n{version}\n\n"
            f"%CSIZE%\n10\n\n{extra}%ARCH%\nany\n\n")


ENTRIES = [
    Entry("alpha-1.0-1", desc_for("alpha", "1.0-1"), "%FILES%\nusr/\nusr/bin/\nusr/bin/alpha\n", MTIME),
    Entry("beta-2:0.5-3", desc_for("beta", "2:0.5-3", "%DESC%\nCaf\u00e9 \u2713 beta\n\n"), "%FILES%\n", MTIME + 1),
    Entry("gamma-1.0-1", desc_for("gamma", "1.0-1"), "%FILES%\netc/\netc/g.conf\n", MTIME + 2),
]


def archives(entries) -> tuple[bytes, bytes, int]:
    db, files = io.BytesIO(), io.BytesIO()
    count = write_archives((entry_members(e) for e in entries), db, files)
    return db.getvalue(), files.getvalue(), count


def bsdtar(*args: str, data: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bsdtar", *args], input=data, capture_output=True, cwd=cwd,
                          env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"})


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def tar_contents(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def expected_names(entries, with_files: bool) -> list[str]:
    names = []
    for e in entries:
        names += [f"{e.entry}/", f"{e.entry}/desc"] + ([f"{e.entry}/files"] if with_files else [])
    return names


# --------------------------------------------------------------------------- tarfile

def test_count_and_gzip_wrapper():
    db, files, count = archives(ENTRIES)
    assert count == 3
    for data in (db, files):
        assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\0\0\0\0"  # no name, mtime 0
        raw = gzip.decompress(data)  # checks CRC32 and ISIZE
        assert len(raw) % 512 == 0 and raw.endswith(b"\0" * 1024)


def test_db_members_with_tarfile():
    db, _, _ = archives(ENTRIES)
    members = tar_members(db)
    # tarfile strips the trailing '/' of directory names
    assert [m.name for m in members] == [n.rstrip("/") for n in expected_names(ENTRIES, False)]
    assert [m.type for m in members] == [tarfile.DIRTYPE, tarfile.REGTYPE] * 3
    assert [m.mtime for m in members] == [MTIME, MTIME, MTIME + 1, MTIME + 1, MTIME + 2, MTIME + 2]
    assert [m.mode for m in members] == [0o755, 0o644] * 3
    assert {(m.uname, m.gname, m.uid, m.gid) for m in members} == {("root", "root", 0, 0)}
    assert tar_contents(db) == {f"{e.entry}/desc": e.desc.encode() for e in ENTRIES}


def test_files_members_with_tarfile():
    _, files, _ = archives(ENTRIES)
    assert [m.name for m in tar_members(files)] == [n.rstrip("/") for n in expected_names(ENTRIES, True)]
    contents = tar_contents(files)
    assert contents == {**{f"{e.entry}/desc": e.desc.encode() for e in ENTRIES},
                        **{f"{e.entry}/files": e.files.encode() for e in ENTRIES}}
    assert contents["beta-2:0.5-3/desc"].decode() == ENTRIES[1].desc  # UTF-8, size in bytes


def test_entries_written_in_the_given_order():
    # write_archives keeps the caller's order; sorted input gives sorted archives
    shuffled = [ENTRIES[2], ENTRIES[0], ENTRIES[1]]
    db, files, _ = archives(shuffled)
    assert [m.name for m in tar_members(db)] == [n.rstrip("/") for n in expected_names(shuffled, False)]
    db_sorted, _, _ = archives(sorted(shuffled, key=lambda e: e.entry))
    names = [m.name for m in tar_members(db_sorted)]
    assert names == sorted(names)


def test_deterministic():
    first = archives(ENTRIES)
    assert archives(ENTRIES) == first
    assert archives(list(ENTRIES)) == first
    # ...and the bytes do depend on the input
    changed = [ENTRIES[0]._replace(mtime=MTIME + 100), *ENTRIES[1:]]
    assert archives(changed)[0] != first[0]
    assert archives(ENTRIES[:2])[0] != first[0]


def test_empty_archive():
    db, files, count = archives([])
    assert count == 0
    assert db == files
    assert gzip.decompress(db) == b"\0" * 1024
    assert tar_members(db) == []


@pytest.mark.parametrize("mtime,stored", [(-5, 0), (0, 0), (2 ** 33 - 1, 2 ** 33 - 1), (2 ** 40, 2 ** 33 - 1)])
def test_mtime_clamped_to_ustar_range(mtime, stored):
    db, _, _ = archives([Entry("a-1-1", "x", "y", mtime)])
    assert {m.mtime for m in tar_members(db)} == {stored}


def test_large_entries_cross_the_flush_size():
    big_files = "%FILES%\n" + "".join(f"usr/share/big/{i:07d}\n" for i in range(60_000))  # ~1.3 MB
    entries = [Entry(f"big{i}-1-1", desc_for(f"big{i}", "1-1"), big_files, MTIME) for i in range(3)]
    db, files, count = archives(entries)
    assert count == 3
    assert tar_contents(files)["big2-1-1/files"] == big_files.encode()
    assert len(gzip.decompress(files)) > 3 * len(big_files)


# Entry lengths around ustar's 100-byte name field: 94 -> '<e>/files' is 100 bytes, 95 -> '<e>/desc'
# is 100 and '<e>/files' 101, 96 -> '<e>/desc' 101, 99 -> '<e>/' 100, 100 -> '<e>/' 101.
LONG = [("a" * (n - 6) + "-1.0-1") for n in (94, 95, 96, 99, 100, 150, 255)]


@pytest.mark.parametrize("entry", LONG, ids=[f"{len(e)}-chars" for e in LONG])
def test_long_names_round_trip_with_tarfile(entry):
    entries = [Entry(entry, desc_for(entry[:-6], "1.0-1"), "%FILES%\nusr/\n", MTIME), ENTRIES[0]]
    db, files, _ = archives(entries)
    assert [m.name for m in tar_members(files)] == [n.rstrip("/") for n in expected_names(entries, True)]
    assert tar_contents(files)[f"{entry}/files"] == b"%FILES%\nusr/\n"
    assert tar_members(db)[0].isdir() and tar_members(db)[0].mtime == MTIME


def test_member_sizes_are_block_aligned():
    desc, files = entry_members(ENTRIES[1])
    assert len(desc) % 512 == 0 and len(files) % 512 == 0
    # dir header + desc header + desc data (padded)
    assert len(desc) == 512 + 512 + -(-len(ENTRIES[1].desc.encode()) // 512) * 512


# --------------------------------------------------------------------------- bsdtar (real)

@needs_bsdtar
@pytest.mark.integration
@pytest.mark.parametrize("with_files", [False, True], ids=["db", "files"])
def test_bsdtar_lists_archive(with_files):
    db, files, _ = archives(ENTRIES)
    proc = bsdtar("-tf", "-", data=files if with_files else db)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert proc.stdout.decode().splitlines() == expected_names(ENTRIES, with_files)


@needs_bsdtar
@pytest.mark.integration
def test_bsdtar_accepts_empty_archive():
    db, _, _ = archives([])
    proc = bsdtar("-tf", "-", data=db)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


@needs_bsdtar
@pytest.mark.integration
@pytest.mark.parametrize("entry", LONG, ids=[f"{len(e)}-chars" for e in LONG])
def test_bsdtar_long_names(entry):
    entries = [Entry(entry, "d", "f", MTIME)]
    _, files, _ = archives(entries)
    proc = bsdtar("-tf", "-", data=files)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == expected_names(entries, True)


@needs_bsdtar
@pytest.mark.integration
def test_bsdtar_extracts_desc_and_files(tmp_path):
    db, files, _ = archives(ENTRIES)
    for name, data, with_files in (("db", db, False), ("files", files, True)):
        out = tmp_path / name
        out.mkdir()
        (tmp_path / f"repo.{name}").write_bytes(data)
        proc = bsdtar("-xf", str(tmp_path / f"repo.{name}"), "-C", str(out))
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in out.iterdir()) == sorted(e.entry for e in ENTRIES)
        for e in ENTRIES:
            assert (out / e.entry / "desc").read_text() == e.desc
            assert (out / e.entry / "files").exists() == with_files
            if with_files:
                assert (out / e.entry / "files").read_text() == e.files
            assert int((out / e.entry / "desc").stat().st_mtime) == e.mtime


# --------------------------------------------------------------------------- against repo-add / pacman

def _synthetic_repo(tmp_path: Path) -> list[Path]:
    pkgs = []
    for name, version, desc in (("db-a", "1.0-1", "plain"), ("db-b", "2:0.1-2", "two  spaces"),
                                ("db-" + "long" * 30, "1.0-1", "a name over 100 chars"),
                                ("db-pct", "1-1", "%weird%")):
        pkgs.append(make_synthetic_package(
            tmp_path / f"{name}-{version}-any.pkg.tar.zst",
            {"pkgname": name, "pkgbase": name, "pkgver": version, "pkgdesc": desc, "size": "3", "arch": "any"},
            {f"usr/share/{name[:20]}/x": b"abc", f"usr/share/{name[:20]}/sub/y": b"y"}))
    return pkgs


def _entries_for(pkgs: list[Path]) -> list[Entry]:
    read = sorted((read_package(p) for p in pkgs), key=lambda p: p.info.entry)
    return [Entry(p.info.entry, render_desc(p), render_files(p.files), MTIME) for p in read]


@needs_bsdtar
@needs_repo_add
@pytest.mark.integration
def test_extracted_content_matches_repo_add(tmp_path):
    pkgs = _synthetic_repo(tmp_path)
    oracle = repo_add_entries(pkgs, tmp_path / "oracle")
    _, files, _ = archives(_entries_for(pkgs))
    (tmp_path / "ours.files").write_bytes(files)
    out = tmp_path / "ours"
    out.mkdir()
    assert bsdtar("-xf", str(tmp_path / "ours.files"), "-C", str(out)).returncode == 0
    ours = {d.name: {f.name: f.read_text() for f in d.iterdir()} for d in out.iterdir()}
    assert sorted(ours) == sorted(oracle)
    for entry, texts in oracle.items():
        assert ours[entry]["desc"] == strip_md5(texts["desc"]), entry
        assert ours[entry]["files"] == texts["files"], entry


@needs_pacman
@pytest.mark.integration
def test_pacman_reads_our_databases(tmp_path):
    pkgs = _synthetic_repo(tmp_path)
    repo = tmp_path / "srv"
    repo.mkdir()
    for p in pkgs:
        shutil.copy(p, repo / p.name)
    db, files, _ = archives(_entries_for(pkgs))
    (repo / "ours.db").write_bytes(db)
    (repo / "ours.files").write_bytes(files)
    client = PacmanClient(tmp_path / "root", {"ours": f"file://{repo}"})
    proc = client.sync_db()
    assert "inconsistent" not in proc.stderr and "warning" not in proc.stderr.lower()
    long_name = "db-" + "long" * 30
    assert client.search_sync("ours") == {"db-a": "1.0-1", "db-b": "2:0.1-2", long_name: "1.0-1",
                                          "db-pct": "1-1"}
    info = client.run("-Si", "db-b", "db-pct").stdout
    assert "Description     : two spaces\n" in info
    assert "Description     : %weird%" in info  # libalpm reads the line after %DESC% as its value
    client.files_sync()
    assert client.list_files(long_name) == ["usr/", "usr/share/", f"usr/share/{long_name[:20]}/",
                                            f"usr/share/{long_name[:20]}/sub/",
                                            f"usr/share/{long_name[:20]}/sub/y",
                                            f"usr/share/{long_name[:20]}/x"]
    client.install("db-b", long_name)
    assert client.installed() == {"db-b": "2:0.1-2", long_name: "1.0-1"}
    assert (tmp_path / "root" / f"usr/share/{long_name[:20]}/x").read_bytes() == b"abc"


@needs_pacman
@pytest.mark.integration
def test_pacman_accepts_empty_database(tmp_path):
    repo = tmp_path / "srv"
    repo.mkdir()
    db, files, _ = archives([])
    (repo / "empty.db").write_bytes(db)
    (repo / "empty.files").write_bytes(files)
    client = PacmanClient(tmp_path / "root", {"empty": f"file://{repo}"})
    client.sync_db()
    client.files_sync()
    assert client.search_sync("empty") == {}


@needs_bsdtar
def test_segments_concatenate_into_one_valid_gzip_stream(tmp_path):
    """Separately deflated segments give the same tar stream as one segment, with a correct
    gzip CRC and length (checked by gzip.decompress and by bsdtar)."""
    members = [entry_members(e) for e in ENTRIES]
    whole_db, whole_files, _ = archives(ENTRIES)
    db, files = io.BytesIO(), io.BytesIO()
    segments = [compress_segment(members[:1]), compress_segment([]), compress_segment(members[1:])]
    assert write_segments(segments, db, files) == len(ENTRIES)
    assert gzip.decompress(db.getvalue()) == gzip.decompress(whole_db)
    assert gzip.decompress(files.getvalue()) == gzip.decompress(whole_files)
    path = tmp_path / "seg.files.tar.gz"
    path.write_bytes(files.getvalue())
    listed = subprocess.run(["bsdtar", "-tf", str(path)], capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed == expected_names(ENTRIES, True)
