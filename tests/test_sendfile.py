"""Package downloads go out with os.sendfile: same bytes, ranges, keep-alive, slow and
vanishing clients, and the plain path when sendfile cannot send a file."""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import os
import random
import select
import socket
import struct
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from waitress.buffers import ReadOnlyFileBasedBuffer

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package
from vieter_lite.web.sendfile import CHUNK, sendfile_fd

PACKAGE_MB = 24  # several times the socket buffers and CHUNK: many sendfile calls
NAME = "big-1.0-1-x86_64.pkg.tar"
PATH = f"/r/x86_64/{NAME}"


def _package(directory: Path, megabytes: int) -> bytes:
    return make_synthetic_package(
        directory / NAME, {"pkgname": "big", "pkgver": "1.0-1", "arch": "x86_64"},
        {"usr/share/big/blob": random.Random(7).randbytes(megabytes << 20)},
        compression="none").read_bytes()


def _publish(url: str, body: bytes) -> None:
    request = urllib.request.Request(f"{url}/r/publish", data=body, method="POST",
                                     headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=60) as resp:
        assert resp.status == 200


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_response(reader: io.BufferedReader, head_request: bool = False
                  ) -> tuple[int, dict[str, str], bytes]:
    """One response from a keep-alive connection: status, headers, Content-Length bytes."""
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    length = 0 if head_request or status in (204, 304) else int(headers["content-length"])
    body = reader.read(length)
    assert len(body) == length
    return status, headers, body


# -- the fast path is taken: an in-process server with os.sendfile counted ----------------

class InProcessServer:
    """The real app in the real waitress server (vieter_lite.web.server), in a thread."""

    def __init__(self, services):
        from vieter_lite.web.app import make_app
        from vieter_lite.web.server import HttpServer

        self.http = HttpServer(make_app(services), "127.0.0.1", 0, threads=2,
                               max_body=1 << 30)
        self.thread = threading.Thread(target=self.http.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.http.port}"

    def stop(self) -> None:
        self.http.stop()
        self.thread.join(timeout=10)


@pytest.fixture
def inprocess(services, tmp_path):
    server = InProcessServer(services)
    body = _package(tmp_path, 6)
    _publish(server.url, body)
    yield server, body
    server.stop()


class CountingSendfile:
    """os.sendfile, recording the bytes each call sent; `fail_after` calls succeed, then
    it raises `error`."""

    def __init__(self, real, fail_after: int | None = None, error: int = errno.EINVAL):
        self.real, self.fail_after, self.error = real, fail_after, error
        self.sent: list[int] = []
        self.failures = 0

    def __call__(self, out_fd: int, in_fd: int, offset: int, count: int) -> int:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            self.failures += 1
            raise OSError(self.error, os.strerror(self.error))
        n = self.real(out_fd, in_fd, offset, min(count, 256 << 10))  # many calls
        self.sent.append(n)
        return n


def test_package_downloads_are_sent_with_sendfile(inprocess, monkeypatch):
    server, body = inprocess
    counter = CountingSendfile(os.sendfile)
    monkeypatch.setattr(os, "sendfile", counter)
    start, end = CHUNK - 1000, CHUNK + 3 * 256 * 1024 + 5  # across a CHUNK boundary
    conn = http.client.HTTPConnection("127.0.0.1", server.http.port, timeout=30)
    try:
        conn.request("GET", PATH)
        full = conn.getresponse().read()
        conn.request("GET", PATH, headers={"Range": f"bytes={start}-{end}"})
        resp = conn.getresponse()
        part = resp.read()
        assert resp.status == 206
    finally:
        conn.close()
    assert _sha(full) == _sha(body)
    assert part == body[start:end + 1]
    # every byte of both bodies left through sendfile, none through the plain path
    expected = len(body) + len(part)
    assert sum(counter.sent) == expected
    assert len(counter.sent) > 2


def _whole_count(out_fd: int, in_fd: int, offset: int, count: int) -> int:
    """os.sendfile that sends all `count` bytes before it returns (waiting for room)."""
    done = 0
    while done < count:
        try:
            done += REAL_SENDFILE(out_fd, in_fd, offset + done, count - done)
        except BlockingIOError:
            select.select([], [out_fd], [], 10)
    return done


REAL_SENDFILE = os.sendfile


def test_a_file_sent_to_its_end_in_one_flush_is_closed_at_once(inprocess, monkeypatch):
    """The flush that sends a file's last byte closes it, also when it used up its share
    of the I/O loop with it: an idle keep-alive connection holds no package file open."""
    server, body = inprocess
    monkeypatch.setattr(os, "sendfile", _whole_count)
    conn = http.client.HTTPConnection("127.0.0.1", server.http.port, timeout=30)
    try:
        conn.request("GET", PATH, headers={"Range": f"bytes=0-{CHUNK - 1}"})
        resp = conn.getresponse()
        assert resp.status == 206 and resp.read() == body[:CHUNK]
        # the connection stays open, idle, and nothing more happens on it
        deadline = time.monotonic() + 10
        while _files_open(os.getpid(), NAME) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _files_open(os.getpid(), NAME) == 0
    finally:
        conn.close()


@pytest.mark.parametrize("fail_after,error", [(0, errno.EINVAL), (3, errno.EINVAL),
                                              (5, errno.ENOSYS)])
def test_when_sendfile_refuses_the_rest_goes_the_plain_way(inprocess, monkeypatch,
                                                           fail_after, error):
    server, body = inprocess
    counter = CountingSendfile(os.sendfile, fail_after=fail_after, error=error)
    monkeypatch.setattr(os, "sendfile", counter)
    sock = socket.create_connection(("127.0.0.1", server.http.port), timeout=30)
    with sock, sock.makefile("rb") as reader:
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n"
                     f"GET {PATH} HTTP/1.1\r\nHost: x\r\nRange: bytes=100-\r\n\r\n"
                     f"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, _, full = read_response(reader)
        assert status == 200 and _sha(full) == _sha(body)
        status, _, tail = read_response(reader)
        assert status == 206 and tail == body[100:]
        assert read_response(reader)[0] == 200
    # sendfile was tried (and refused once per file) before the plain path took over
    assert counter.failures == 2
    assert len(counter.sent) == fail_after


def test_sendfile_descriptor_only_for_regular_files(tmp_path):
    regular = tmp_path / "file"
    regular.write_bytes(b"x" * 100)
    read_end, write_end = os.pipe()
    with open(regular, "rb") as fh, os.fdopen(read_end, "rb") as pipe:
        os.close(write_end)
        cases = [(ReadOnlyFileBasedBuffer(fh), fh.fileno()),
                 (ReadOnlyFileBasedBuffer(io.BytesIO(b"abc")), None),  # no descriptor
                 (ReadOnlyFileBasedBuffer(pipe), None),                # not a regular file
                 (io.BytesIO(b"abc"), None)]                           # not a file_wrapper
        for buffer, expected in cases:
            assert sendfile_fd(buffer) == expected, buffer
            assert sendfile_fd(buffer) == expected, buffer  # cached per buffer


# -- a real server process -----------------------------------------------------------------

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A server process (2 worker threads) holding a PACKAGE_MB MB package."""
    tmp = tmp_path_factory.mktemp("sendfile")
    proc = ServerProcess(tmp / "data", env_extra={"VIETER_THREADS": "2"}).start()
    body = _package(tmp, PACKAGE_MB)
    _publish(proc.url, body)
    yield proc, body
    assert proc.stop() == 0, proc.log()


def test_full_download_and_ranges_are_byte_identical(big):
    proc, body = big
    size = len(body)
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=60)
    try:
        conn.request("GET", PATH)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Length") == str(size)
        assert _sha(resp.read()) == _sha(body)
        for start, end in [(0, 0), (1, CHUNK), (CHUNK - 7, 2 * CHUNK + 7),
                           (size - 3 * CHUNK - 1, size - 1), (size // 2, size - 2)]:
            conn.request("GET", PATH, headers={"Range": f"bytes={start}-{end}"})
            resp = conn.getresponse()
            assert resp.status == 206
            assert resp.getheader("Content-Range") == f"bytes {start}-{end}/{size}"
            assert _sha(resp.read()) == _sha(body[start:end + 1]), (start, end)
    finally:
        conn.close()


@pytest.mark.parametrize("pipelined", [False, True])
def test_keep_alive_after_file_responses(big, pipelined):
    """One connection: file responses (full, ranges, HEAD), a db, a 304 and a 204-less
    /health after it. Each response ends exactly where the next begins, and a 304 keeps the
    connection open (waitress alone closes it after any response without a body length)."""
    proc, body = big
    size = len(body)
    last_modified = http_date_of(proc)
    requests = [("GET", PATH, "Range: bytes=5-1000004\r\n"), ("HEAD", PATH, ""),
                ("GET", PATH, ""), ("GET", PATH, "Range: bytes=-3\r\n"),
                ("GET", "/r/x86_64/r.db", ""), ("GET", PATH, "Range: bytes=0-0\r\n"),
                ("GET", PATH, f"If-Modified-Since: {last_modified}\r\n"), ("GET", "/health", "")]
    texts = [f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()
             for method, path, extra in requests]
    answers = []
    with socket.create_connection(("127.0.0.1", proc.port), timeout=60) as sock, \
            sock.makefile("rb") as reader:
        if pipelined:
            sock.sendall(b"".join(texts))
        for text, (method, _, _) in zip(texts, requests, strict=True):
            if not pipelined:
                sock.sendall(text)
            answers.append(read_response(reader, head_request=method == "HEAD"))
    assert [a[0] for a in answers] == [206, 200, 200, 206, 200, 206, 304, 200]
    assert answers[0][2] == body[5:1000005]
    assert answers[1][1]["content-length"] == str(size) and answers[1][2] == b""
    assert _sha(answers[2][2]) == _sha(body)
    assert answers[3][2] == body[-3:]
    assert answers[4][2][:2] == b"\x1f\x8b"  # the gzip'd db
    assert answers[5][2] == body[:1]
    assert answers[6][2] == b"" and "connection" not in answers[6][1]
    assert b"Healthy" in answers[7][2]


def http_date_of(proc: ServerProcess) -> str:
    with urllib.request.urlopen(urllib.request.Request(proc.url + PATH, method="HEAD"),
                                timeout=20) as resp:
        return resp.headers["Last-Modified"]


def test_slow_reader_gets_every_byte_while_the_server_answers_others(big):
    proc, body = big
    with socket.create_connection(("127.0.0.1", proc.port), timeout=60) as sock:
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        received = bytearray()
        # a trickle: the socket buffers (some MB) fill up and the server has to wait with
        # the rest of the file, while other clients are served in full
        for _ in range(20):
            received += sock.recv(16384)
            time.sleep(0.02)
            with urllib.request.urlopen(proc.url + "/health", timeout=20) as resp:
                assert resp.status == 200
        with urllib.request.urlopen(proc.url + "/r/x86_64/r.db", timeout=20) as resp:
            assert resp.status == 200
        assert len(received) < len(body)  # still in the middle of the download
        while chunk := sock.recv(1 << 20):
            received += chunk
    head, _, got = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert _sha(got) == _sha(body)


def _files_open(pid: int, name: str) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(name)
        except FileNotFoundError:  # closed meanwhile
            pass
    return count


def _files_open(pid: int, name: str) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(name)
        except FileNotFoundError:  # closed meanwhile
            pass
    return count


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_clients_that_hang_up_mid_download_leave_no_descriptor_behind(big):
    proc, body = big
    assert proc.proc is not None
    pid = proc.proc.pid
    with urllib.request.urlopen(proc.url + PATH, timeout=60) as resp:  # a settled server
        assert len(resp.read()) == len(body)
    before = _open_fds(pid)
    for i in range(8):
        sock = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = 0
        while got < (i + 1) * 100_000:
            got += len(sock.recv(65536))
        if i % 2:  # a reset instead of an orderly close
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    deadline = time.monotonic() + 30
    while _open_fds(pid) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _open_fds(pid) == before, sorted(os.listdir(f"/proc/{pid}/fd"))
    with urllib.request.urlopen(proc.url + PATH, timeout=60) as resp:
        assert _sha(resp.read()) == _sha(body)
