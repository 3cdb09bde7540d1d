"""Source bundles: made from a source container's directory, read from the server, packed
for the build container; regular files only, plain relative names, at most 1 MiB."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from vieter_lite.agent import bundle
from vieter_lite.agent.bundle import BundleError, SourceFile

PKGBUILD = SourceFile("PKGBUILD", b"pkgname=x\n", bundle.REGULAR)


def tar_of(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return out.getvalue()


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def chunks(data: bytes, size: int = 5000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# -- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("PKGBUILD", "PKGBUILD"),
    ("./PKGBUILD", "PKGBUILD"),
    ("sub/dir/file.patch", "sub/dir/file.patch"),
    ("sub/", "sub"),
    (".hidden", ".hidden"),
    ("a..b", "a..b"),
])
def test_plain_relative_names(name, expected):
    assert bundle.check_name(name) == expected


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./",
                                  "a/./b", "new\nline", "tab\there"])
def test_names_that_are_no_plain_relative_path(name):
    with pytest.raises(BundleError, match="not a plain relative path"):
        bundle.check_name(name)


# -- made from the container's directory ---------------------------------------------------

def test_from_a_directory_as_tar_streams_it(tmp_path):
    """GNU tar's stream of a directory, as podman's archive API sends it (the directory's
    own name first), becomes the files below it."""
    top = tmp_path / "bundle"
    (top / "sub").mkdir(parents=True)
    (top / "PKGBUILD").write_text("pkgname=x\n")
    (top / "run.sh").write_text("#!/bin/sh\n")
    (top / "run.sh").chmod(0o775)
    (top / "sub" / "a.patch").write_bytes(b"\x00\x01binary")
    (top / "empty").mkdir()
    streamed = subprocess.run(["tar", "-C", str(tmp_path), "-cf", "-", "bundle"],
                              capture_output=True, check=True).stdout
    files = bundle.from_container(chunks(streamed))
    assert [(f.name, f.data, f.mode) for f in files] == [
        ("PKGBUILD", b"pkgname=x\n", 0o644), ("run.sh", b"#!/bin/sh\n", 0o755),
        ("sub/a.patch", b"\x00\x01binary", 0o644)]


@pytest.mark.parametrize("member, message", [
    (special("bundle/link", tarfile.SYMTYPE, "/etc/passwd"),
     "link is a symbolic link \\(to '/etc/passwd'\\): a source bundle holds regular files"),
    (special("bundle/hard", tarfile.LNKTYPE, "bundle/PKGBUILD"), "hard is a hard link"),
    (special("bundle/dev", tarfile.CHRTYPE), "dev is a device"),
    (special("bundle/blk", tarfile.BLKTYPE), "blk is a device"),
    (special("bundle/pipe", tarfile.FIFOTYPE), "pipe is a FIFO"),
    (("bundle/../escape", b"x"), "not a plain relative path"),
])
def test_from_the_container_refuses_anything_but_regular_files(member, message):
    data = tar_of([special("bundle", tarfile.DIRTYPE), ("bundle/PKGBUILD", b"x"), member])
    with pytest.raises(BundleError, match=message):
        bundle.from_container(chunks(data))


def test_from_the_container_needs_a_pkgbuild_and_skips_git():
    data = tar_of([special("bundle", tarfile.DIRTYPE), ("bundle/README", b"x"),
                   ("bundle/.git/config", b"x"), ("bundle/sub/.git", b"x")])
    with pytest.raises(BundleError, match="no PKGBUILD at its top"):
        bundle.from_container(chunks(data))
    data = tar_of([("bundle/PKGBUILD", b"p"), ("bundle/.git/HEAD", b"ref"),
                   ("bundle/sub/.git", b"gitdir")])
    assert [f.name for f in bundle.from_container(chunks(data))] == ["PKGBUILD"]


def test_the_size_limits():
    # two headers, the PKGBUILD's block, the two end blocks: 5 blocks besides the big file
    fits = bundle.MAX_BUNDLE_BYTES - 5 * 512
    just = [PKGBUILD, SourceFile("big", b"x" * fits, 0o644)]
    assert len(bundle.make(just)) == bundle.MAX_BUNDLE_BYTES
    over = [PKGBUILD, SourceFile("big", b"x" * (fits + 1), 0o644)]
    with pytest.raises(BundleError, match="would be .* bytes, more than 1048576"):
        bundle.make(over)
    streamed = tar_of([("bundle/PKGBUILD", b"p"),
                       ("bundle/big", b"x" * (bundle.MAX_BUNDLE_BYTES + 1))])
    with pytest.raises(BundleError, match="larger than 1048576 bytes"):
        bundle.from_container(chunks(streamed))
    endless = (special(f"bundle/d{i}", tarfile.DIRTYPE).tobuf() for i in range(10 ** 9))
    with pytest.raises(BundleError, match="larger than 1048576 bytes"):  # read 2 MiB at most
        bundle.from_container(endless)


def test_at_most_500_files():
    names = [f"f{i:03}" for i in range(bundle.MAX_FILES - 1)]
    full = tar_of([("bundle/PKGBUILD", b"p")] + [(f"bundle/{n}", b"") for n in names])
    assert len(bundle.from_container(chunks(full))) == bundle.MAX_FILES
    more = tar_of([("bundle/PKGBUILD", b"p")] + [(f"bundle/{n}", b"") for n in names]
                  + [("bundle/one-more", b"")])
    with pytest.raises(BundleError, match="more than 500 files"):
        bundle.from_container(chunks(more))


def test_a_broken_stream():
    with pytest.raises(BundleError, match="cannot read the source"):
        bundle.from_container([b"not a tar at all" * 100])


# -- the bundle ----------------------------------------------------------------------------

def test_make_is_deterministic_and_holds_the_files_alone():
    files = [SourceFile("sub/b", b"b", 0o644), PKGBUILD, SourceFile("a.sh", b"#!", 0o755)]
    made = bundle.make(files)
    assert made == bundle.make(list(reversed(files)))
    with tarfile.open(fileobj=io.BytesIO(made)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["PKGBUILD", "a.sh", "sub/b"]
    assert all(m.isreg() and m.uid == 0 and m.gid == 0 and m.mtime == 0 and m.uname == ""
               for m in members)
    assert [m.mode for m in members] == [0o644, 0o755, 0o644]
    assert bundle.read(made) == sorted(files, key=lambda f: f.name)


def test_read_checks_the_servers_bundle_like_a_fresh_one():
    assert bundle.read(tar_of([("./PKGBUILD", b"p"), special("sub", tarfile.DIRTYPE),
                               ("sub/x", b"x")])) == [
        SourceFile("PKGBUILD", b"p", 0o644), SourceFile("sub/x", b"x", 0o644)]
    for members, message in [
            ([("PKGBUILD", b"p"), special("l", tarfile.SYMTYPE, "PKGBUILD")], "symbolic link"),
            ([("PKGBUILD", b"p"), ("/abs", b"x")], "not a plain relative path"),
            ([("PKGBUILD", b"p"), ("PKGBUILD", b"q")], "names PKGBUILD twice"),
            ([("sub/PKGBUILD", b"p")], "no PKGBUILD at its top")]:
        with pytest.raises(BundleError, match=message):
            bundle.read(tar_of(members))
    with pytest.raises(BundleError, match="larger than 1048576"):
        bundle.read(b"\0" * (bundle.MAX_BUNDLE_BYTES + 1))
    with pytest.raises(BundleError, match="cannot read the source bundle"):
        bundle.read(b"junk" * 300)


def test_for_the_container_every_directory_is_there_and_readable(tmp_path: Path):
    files = [PKGBUILD, SourceFile("a/b/c.patch", b"c", 0o644), SourceFile("a/run", b"r", 0o755)]
    packed = bundle.for_container(files, "vieter-source")
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        listed = [(m.name, m.isdir(), oct(m.mode)) for m in tar.getmembers()]
        # (tarfile's extraction filters came with Python 3.11.4; Debian 12 has 3.11.2)
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter")
                                    else {}))
    assert listed == [("vieter-source", True, "0o755"),
                      ("vieter-source/PKGBUILD", False, "0o644"),
                      ("vieter-source/a", True, "0o755"), ("vieter-source/a/b", True, "0o755"),
                      ("vieter-source/a/b/c.patch", False, "0o644"),
                      ("vieter-source/a/run", False, "0o755")]
    assert (tmp_path / "vieter-source/a/b/c.patch").read_bytes() == b"c"


def test_for_the_container_the_tar_ends_at_its_end_marker_without_record_padding():
    """Podman's copier stops reading at the end marker; padding after it made the copy into
    the container fail now and then with "write |1: broken pipe" (HTTP 500), failing the
    build (found by the soak, tests/test_soak.py)."""
    packed = bundle.for_container([PKGBUILD], "vieter-source")
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        tar.getmembers()
        last_member_end = tar.offset
    assert len(packed) == last_member_end + 2 * tarfile.BLOCKSIZE
    assert packed[last_member_end:] == b"\0" * 2 * tarfile.BLOCKSIZE
