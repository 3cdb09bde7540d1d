"""vieter_lite.repo.archives on disk: generations switched by one symlink, the names that
go through it, a data dir written before this layout, and what a crash leaves."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from vieter_lite.repo import archives


def writer(text: str):
    def write(db_out, files_out) -> int:
        db_out.write(f"db {text}".encode())
        files_out.write(f"files {text}".encode())
        return 1
    return write


def sign_copy(pairs) -> None:
    """A stand-in signer: the 'signature' names the file's content."""
    for path, out in pairs:
        out.write_bytes(b"sig of " + path.read_bytes())


def test_every_name_goes_through_current(tmp_path):
    archives.write_generation(tmp_path, "core", 1000, writer("one"), sign_copy)
    for name, content in (("core.db", b"db one"), ("core.db.tar.gz", b"db one"),
                          ("core.files", b"files one"), ("core.db.sig", b"sig of db one"),
                          ("core.db.tar.gz.sig", b"sig of db one"),
                          ("core.files.tar.gz.sig", b"sig of files one")):
        assert (tmp_path / name).read_bytes() == content, name
        assert (tmp_path / name).is_symlink()
    assert archives.is_signed(tmp_path, "core")
    first = os.readlink(tmp_path / archives.CURRENT)
    archives.write_generation(tmp_path, "core", 1001, writer("two"), None)
    assert os.readlink(tmp_path / archives.CURRENT) != first
    assert (tmp_path / "core.db").read_bytes() == b"db two"
    assert not archives.is_signed(tmp_path, "core")
    assert not (tmp_path / "core.db.sig").is_symlink()  # unsigned: no signature names
    assert os.stat(tmp_path / "core.db").st_mtime == 1001


def test_a_data_dir_of_the_old_layout_is_taken_over_in_place(tmp_path):
    """Before generations, the archives were regular files next to their links."""
    (tmp_path / "core.db.tar.gz").write_bytes(b"old db")
    (tmp_path / "core.db").symlink_to("core.db.tar.gz")
    (tmp_path / ".tmp.core.db.tar.gz").write_bytes(b"a crash's temp file")
    assert not archives.is_signed(tmp_path, "core")
    archives.write_generation(tmp_path, "core", 2000, writer("new"), sign_copy)
    assert (tmp_path / "core.db.tar.gz").is_symlink()
    assert (tmp_path / "core.db").read_bytes() == b"db new"
    assert (tmp_path / "core.db.sig").read_bytes() == b"sig of db new"
    assert not (tmp_path / ".tmp.core.db.tar.gz").exists()


def test_only_recent_generations_stay_and_a_crashed_one_goes(tmp_path):
    crashed = tmp_path / f"{archives.GENERATION}999-deadbeef"
    crashed.mkdir(parents=True)
    for stamp in range(1000, 1006):
        archives.write_generation(tmp_path, "core", stamp, writer(str(stamp)), None)
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(archives.GENERATION))
    assert [name.split("-")[0] for name in kept] == [".g1003", ".g1004", ".g1005"]
    assert os.readlink(tmp_path / archives.CURRENT) == kept[-1]


def test_ensure_symlink_replaces_a_file_in_one_rename(tmp_path):
    target = tmp_path / "name"
    target.write_bytes(b"file")
    archives.ensure_symlink(target, "elsewhere")
    assert os.readlink(target) == "elsewhere"
    archives.ensure_symlink(target, "elsewhere")  # no change, no temp left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["name"]


def test_the_store_reads_through_the_layout(tmp_path):
    """Real gzip'd tar archives written by a generation open like any db."""
    def write(db_out, files_out) -> int:
        for out in (db_out, files_out):
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                info = tarfile.TarInfo("a-1.0-1/desc")
                tar.addfile(info, io.BytesIO(b""))
            out.write(buffer.getvalue())
        return 1

    archives.write_generation(tmp_path, "core", 3000, write, None)
    with tarfile.open(Path(tmp_path / "core.db")) as tar:
        assert tar.getnames() == ["a-1.0-1/desc"]
