"""BuildLogs: one file per build, appended in chunks, received whole into a temp file and
adopted, server notes, temp-file cleanup. Real files in tmp_path."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from vieter_lite import logs as logs_module
from vieter_lite.errors import BadRequest, PayloadTooLarge
from vieter_lite.logs import BuildLogs
from vieter_lite.streams import CHUNK


def reader(data: bytes):
    return io.BytesIO(data).read


def trickle(data: bytes, step: int = 7):
    """A read() that returns fewer bytes than asked (like a socket), never b"" early."""
    stream = io.BytesIO(data)
    return lambda n: stream.read(min(n, step))


def short(data: bytes):
    """A read() whose stream ends after `data` (a client that hung up)."""
    return io.BytesIO(data).read


@pytest.fixture
def logs(tmp_path: Path) -> BuildLogs:
    return BuildLogs(tmp_path / "logs")


def test_logs_dir_is_created_and_paths_are_by_build_id(tmp_path: Path) -> None:
    logs = BuildLogs(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    assert logs.path(17) == tmp_path / "a" / "b" / "17.log"
    assert logs.path("5") == tmp_path / "a" / "b" / "5.log"  # type: ignore[arg-type]


def test_append_in_chunks_and_read_mid_way(logs: BuildLogs) -> None:
    parts = [b"==> Making package\n", b"", b"-> compiling \xff\x00 binary\n", b"done\n"]
    so_far = b""
    for part in parts:
        size = logs.append(3, reader(part), len(part))
        so_far += part
        assert size == len(so_far)
        assert logs.path(3).read_bytes() == so_far  # readable while the build runs


def test_append_large_body_with_short_socket_reads(logs: BuildLogs) -> None:
    body = bytes(range(256)) * ((3 * CHUNK) // 256 + 5)
    assert logs.append(1, trickle(body, step=CHUNK // 3 + 1), len(body)) == len(body)
    assert logs.append(1, reader(b"tail"), 4) == len(body) + 4
    assert logs.path(1).read_bytes() == body + b"tail"


def test_append_asks_for_at_most_chunk_and_the_remaining_bytes(logs: BuildLogs) -> None:
    body = b"x" * (CHUNK + 10) + b"NOT PART OF THIS LOG"
    stream = io.BytesIO(body)
    asked: list[int] = []

    def read(n: int) -> bytes:
        asked.append(n)
        return stream.read(n)

    logs.append(2, read, CHUNK + 10)
    assert asked == [CHUNK, 10]
    assert logs.path(2).read_bytes() == b"x" * (CHUNK + 10)
    assert stream.read() == b"NOT PART OF THIS LOG"  # nothing read beyond the length


def test_short_read_raises_and_leaves_the_log_as_it_was(logs: BuildLogs) -> None:
    logs.append(4, reader(b"line 1\n"), 7)
    with pytest.raises(BadRequest) as info:
        logs.append(4, short(b"partial li"), 100)
    assert "10 of 100" in info.value.message
    assert logs.path(4).read_bytes() == b"line 1\n"
    # and appending still works afterwards, right after the old end
    assert logs.append(4, reader(b"line 2\n"), 7) == 14
    assert logs.path(4).read_bytes() == b"line 1\nline 2\n"


def test_short_read_across_chunks_leaves_the_log_as_it_was(logs: BuildLogs) -> None:
    logs.append(5, reader(b"head\n"), 5)
    with pytest.raises(BadRequest):
        logs.append(5, short(b"y" * (2 * CHUNK + 3)), 3 * CHUNK)
    assert logs.path(5).read_bytes() == b"head\n"


def test_short_read_on_a_new_log_leaves_it_empty(logs: BuildLogs) -> None:
    with pytest.raises(BadRequest):
        logs.append(6, short(b"abc"), 10)
    path = logs.path(6)
    assert not path.exists() or path.read_bytes() == b""


def test_a_reader_exception_also_rolls_back(logs: BuildLogs) -> None:
    logs.append(7, reader(b"keep\n"), 5)
    calls = []

    def broken(n: int) -> bytes:
        calls.append(n)
        if len(calls) > 1:
            raise ConnectionResetError("peer went away")
        return b"z" * n

    with pytest.raises(ConnectionResetError):
        logs.append(7, broken, 2 * CHUNK)
    assert logs.path(7).read_bytes() == b"keep\n"


def test_append_over_the_size_limit_is_refused(logs: BuildLogs,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_module, "MAX_LOG_SIZE", 10)
    assert logs.append(8, reader(b"123456"), 6) == 6
    assert logs.append(8, reader(b"7890"), 4) == 10  # exactly at the limit
    with pytest.raises(PayloadTooLarge):
        logs.append(8, reader(b"!"), 1)
    assert logs.path(8).read_bytes() == b"1234567890"


def test_concurrent_appends_do_not_interleave(logs: BuildLogs) -> None:
    pieces = [bytes([65 + i]) * (CHUNK + 100 * i) for i in range(8)]
    barrier = threading.Barrier(len(pieces))

    def worker(piece: bytes) -> None:
        barrier.wait()
        logs.append(9, trickle(piece, step=4096), len(piece))

    threads = [threading.Thread(target=worker, args=(p,)) for p in pieces]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    data = logs.path(9).read_bytes()
    assert len(data) == sum(map(len, pieces))
    # each piece is one contiguous run
    pos, seen = 0, []
    while pos < len(data):
        letter = data[pos]
        run = len(data[pos:]) - len(data[pos:].lstrip(bytes([letter])))
        seen.append(bytes([letter]) * run)
        pos += run
    assert sorted(seen) == sorted(pieces)


def test_receive_then_adopt(logs: BuildLogs) -> None:
    body = b"whole log\n" * 1000
    tmp = logs.receive(trickle(body, step=333), len(body))
    assert tmp.parent == logs.dir and tmp.name.startswith(".tmp-")
    assert tmp.read_bytes() == body
    assert not logs.path(11).exists()
    logs.adopt(tmp, 11)
    assert not tmp.exists()
    assert logs.path(11).read_bytes() == body


def test_adopt_replaces_an_existing_log(logs: BuildLogs) -> None:
    logs.append(12, reader(b"old"), 3)
    logs.adopt(logs.receive(reader(b"new log"), 7), 12)
    assert logs.path(12).read_bytes() == b"new log"


def test_receive_empty_log(logs: BuildLogs) -> None:
    tmp = logs.receive(reader(b""), 0)
    logs.adopt(tmp, 13)
    assert logs.path(13).read_bytes() == b""


def test_receive_short_read_leaves_no_temp_file(logs: BuildLogs) -> None:
    with pytest.raises(BadRequest):
        logs.receive(short(b"only this"), 50)
    assert list(logs.dir.iterdir()) == []


def test_receive_over_the_limit_is_refused_before_reading(
        logs: BuildLogs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs_module, "MAX_LOG_SIZE", 10)

    def never(n: int) -> bytes:
        raise AssertionError("read() should not be called")

    with pytest.raises(PayloadTooLarge):
        logs.receive(never, 11)
    assert list(logs.dir.iterdir()) == []


def test_note_adds_a_line(logs: BuildLogs) -> None:
    logs.append(14, reader(b"no newline at the end"), 21)
    logs.note(14, "vieter-lite: build timed out after 60 s")
    assert logs.path(14).read_bytes() == \
        b"no newline at the end\nvieter-lite: build timed out after 60 s\n"
    logs.note(15, "first")  # a note on a build without a log yet creates it
    assert logs.path(15).read_bytes() == b"\nfirst\n"


def test_remove_temp_files_keeps_logs(logs: BuildLogs) -> None:
    logs.append(16, reader(b"keep"), 4)
    leftovers = [logs.receive(reader(b"abc"), 3) for _ in range(3)]
    (logs.dir / ".tmp-manual").write_bytes(b"x")
    assert all(p.exists() for p in leftovers)
    logs.remove_temp_files()
    assert sorted(p.name for p in logs.dir.iterdir()) == ["16.log"]
    logs.remove_temp_files()  # nothing to do is fine


def test_remove_deletes_the_file_and_a_missing_file_is_fine(logs: BuildLogs) -> None:
    logs.append(17, reader(b"bye"), 3)
    logs.remove(17)
    assert not logs.path(17).exists()
    logs.remove(17)
    logs.remove(99999)
