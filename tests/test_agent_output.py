"""The agent takes only package files out of a build's output, within limits."""

from __future__ import annotations

import io
import tarfile

import pytest

from vieter_lite.agent.output import OutputError, extract_packages


def tar_stream(members: list[tuple[str, bytes | str | None]], chunk: int = 7000) -> list[bytes]:
    """A tar of `out/...` members as podman's archive API streams it: (name, data) for a
    file, (name, str) for a symlink to that target, (name, None) for a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return [raw[i:i + chunk] for i in range(0, len(raw), chunk)]


def test_only_regular_package_files_at_the_top_are_taken(tmp_path):
    chunks = tar_stream([
        ("out", None),
        ("out/a-1-1-x86_64.pkg.tar.zst", b"A" * 20000),
        ("out/a-1-1-x86_64.pkg.tar.zst.sig", b"sig"),
        ("out/b-1-1-any.pkg.tar.xz", b"B"),
        ("out/link-1-1-any.pkg.tar.zst", "/etc/shadow"),
        ("out/sub", None),
        ("out/sub/c-1-1-any.pkg.tar.zst", b"C"),
        ("out/notes.txt", b"x"),
        ("out/..pkg.tar", b"dots"),
    ])
    found = extract_packages(chunks, tmp_path)
    assert [p.name for p in found] == ["a-1-1-x86_64.pkg.tar.zst", "b-1-1-any.pkg.tar.xz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in found]
    assert (tmp_path / "a-1-1-x86_64.pkg.tar.zst").read_bytes() == b"A" * 20000
    assert not any(p.is_symlink() for p in tmp_path.iterdir())


@pytest.mark.parametrize("members, limits, message", [
    ([(f"out/p{i}-1-1-any.pkg.tar.zst", b"x") for i in range(4)], {"max_packages": 3},
     "more than 3 packages"),
    ([("out/big-1-1-any.pkg.tar.zst", b"x" * 5000)], {"max_package_bytes": 4999},
     "big-1-1-any.pkg.tar.zst is larger than 4999 bytes"),
    ([("out/junk.bin", b"x" * 100000), ("out/a-1-1-any.pkg.tar.zst", b"a")],
     {"max_output_bytes": 50000}, "larger than 50000 bytes"),
])
def test_limits(tmp_path, members, limits, message):
    with pytest.raises(OutputError, match=message):
        extract_packages(tar_stream(members), tmp_path, **limits)


def test_not_a_tar_stream(tmp_path):
    with pytest.raises(OutputError, match="cannot read the build's output"):
        extract_packages([b"no tar here" * 100], tmp_path)
