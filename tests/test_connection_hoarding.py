"""Clients without a key cannot hold connections until nobody else gets one: headers that
trickle in are cut off, and a full server closes the longest-waiting connection, then one
address's extra downloads, then slow readers' downloads, to make room. The server tests
run a real server process and real sockets; the rules of web/room.py have tables."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package
from vieter_lite.web.room import SendRate, address_key, hoarded, slow_readers, waiting_since


def _server(tmp_path: Path, **keys: int) -> ServerProcess:
    env = {f"VIETER_{name.upper()}": str(value) for name, value in keys.items()}
    return ServerProcess(tmp_path / "data", env_extra=env).start()


class Trickler:
    """Connections that send a request's headers a byte at a time, never finishing."""

    def __init__(self, port: int, count: int, every: float = 0.25):
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.every = every
        self.stop = threading.Event()
        self.closed_by_server: set[int] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        text = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100_000
        position = 0
        while not self.stop.wait(self.every):
            for index, sock in enumerate(self.socks):
                if index in self.closed_by_server:
                    continue
                try:
                    sock.send(text[position:position + 1])
                except OSError:
                    self.closed_by_server.add(index)
            position += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the server closes this connection before `within` seconds pass."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _get(url: str, timeout: float = 15) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        resp.read()
        return resp.status


def test_headers_that_trickle_in_are_cut_off_after_header_timeout(tmp_path):
    proc = _server(tmp_path, header_timeout=2, channel_timeout=60)
    try:
        sock = socket.create_connection(("127.0.0.1", proc.port))
        stop = threading.Event()

        def trickle() -> None:
            # a byte every 0.2 s keeps waitress's idle timer (channel_timeout) fresh
            for byte in b"GET /health HTTP/1.1\r\nX-Slow: " + b"z" * 1000:
                if stop.wait(0.2):
                    return
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            # well inside channel_timeout, well past header_timeout
            assert _closed_by_peer(sock, within=20)
        finally:
            stop.set()
            thread.join()
            sock.close()
        # a client that sends its headers at once is served as before
        assert _get(proc.url + "/health") == 200
    finally:
        proc.stop()


def test_an_idle_connection_is_closed_after_channel_timeout(tmp_path):
    proc = _server(tmp_path, channel_timeout=2)
    try:
        sock = socket.create_connection(("127.0.0.1", proc.port))
        try:
            assert _closed_by_peer(sock, within=20)
        finally:
            sock.close()
    finally:
        proc.stop()


def test_trickling_connections_at_the_limit_do_not_lock_others_out(tmp_path):
    # header_timeout is long, so only making room can let the client in
    proc = _server(tmp_path, connection_limit=20, header_timeout=600, channel_timeout=600)
    trickler = Trickler(proc.port, count=40)
    try:
        time.sleep(1)
        for _ in range(3):
            assert _get(proc.url + "/health") == 200
        request = urllib.request.Request(f"{proc.url}/api/v1/targets",
                                         headers={"X-Api-Key": API_KEY})
        with urllib.request.urlopen(request, timeout=15) as resp:
            assert resp.status == 200
        assert trickler.closed_by_server, "no trickling connection was closed for room"
    finally:
        trickler.close()
        proc.stop()


def test_making_room_closes_waiting_connections_before_a_download_in_progress(tmp_path):
    proc = _server(tmp_path, connection_limit=12, header_timeout=600, channel_timeout=600)
    try:
        payload = os.urandom(32 << 20)  # more than the socket buffers hold
        pkg = make_synthetic_package(
            tmp_path / "big.pkg.tar.gz", {"pkgname": "big", "pkgver": "1.0-1", "arch": "x86_64"},
            {"usr/share/big/blob": payload}, compression="gz")
        publish = urllib.request.Request(f"{proc.url}/r/publish", data=pkg.read_bytes(),
                                         headers={"X-Api-Key": API_KEY}, method="POST")
        urllib.request.urlopen(publish, timeout=60).close()
        reader = socket.create_connection(("127.0.0.1", proc.port))
        reader.sendall(b"GET /r/x86_64/big-1.0-1-x86_64.pkg.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1)  # the response is on its way, blocked on the reader
        trickler = Trickler(proc.port, count=30)
        try:
            time.sleep(1)
            assert _get(proc.url + "/health") == 200
            reader.settimeout(30)
            received = bytearray()
            while b"\r\n\r\n" not in received:
                received += reader.recv(65536)
            head, _, body = bytes(received).partition(b"\r\n\r\n")
            body = bytearray(body)
            while len(body) < pkg.stat().st_size:
                chunk = reader.recv(1 << 20)
                if not chunk:
                    break
                body += chunk
            assert head.startswith(b"HTTP/1.1 200")
            assert body == pkg.read_bytes()
            assert trickler.closed_by_server
        finally:
            trickler.close()
            reader.close()
    finally:
        proc.stop()


class _Parser:
    def __init__(self, started: float, headers_finished: bool = False):
        self.started = started
        self.headers_finished = headers_finished


class _Channel:
    def __init__(self, request=None, requests=(), outbuf=0, last_activity=5.0):
        self.request = request
        self.requests = list(requests)
        self.total_outbufs_len = outbuf
        self.will_close = False
        self.close_when_flushed = False
        self.last_activity = last_activity


@pytest.mark.parametrize("channel, expected", [
    (_Channel(), 5.0),                                           # idle keep-alive
    (_Channel(request=_Parser(3.0)), 3.0),                       # headers incomplete
    (_Channel(request=_Parser(3.0, headers_finished=True)), None),  # a keyholder's body
    (_Channel(requests=["running"]), None),                      # a request running
    (_Channel(outbuf=10), None),                                 # a response being sent
])
def test_which_connections_may_be_closed_for_room(channel, expected):
    assert waiting_since(channel) == expected


def _big_package(tmp_path: Path, proc: ServerProcess) -> Path:
    """A published package larger than the socket buffers hold (so a reader that does not
    read keeps its download in progress)."""
    pkg = make_synthetic_package(
        tmp_path / "big.pkg.tar.gz", {"pkgname": "big", "pkgver": "1.0-1", "arch": "x86_64"},
        {"usr/share/big/blob": os.urandom(32 << 20)}, compression="gz")
    publish = urllib.request.Request(f"{proc.url}/r/publish", data=pkg.read_bytes(),
                                     headers={"X-Api-Key": API_KEY}, method="POST")
    urllib.request.urlopen(publish, timeout=60).close()
    return pkg


def _stalled_download(port: int, source: str) -> socket.socket:
    """A download from `source` (a loopback address) whose reader never reads."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    sock.sendall(b"GET /r/x86_64/big-1.0-1-x86_64.pkg.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def _read_response(sock: socket.socket, size: int) -> tuple[bytes, bytes]:
    """The head and body of a response of `size` body bytes (or what came before EOF)."""
    sock.settimeout(30)
    received = bytearray()
    while True:
        head, found, body = bytes(received).partition(b"\r\n\r\n")
        if found and len(body) >= size:
            return head, body
        chunk = sock.recv(1 << 20)
        if not chunk:
            return head, body
        received += chunk


def test_one_address_holding_every_slot_with_downloads_does_not_lock_others_out(tmp_path):
    """Slow readers from one address fill every connection with downloads in progress (none
    waits on its client, so none would be closed for room): the server cuts that address's
    quietest ones down to half the slots, and another client is served. Another address's
    download in progress is never cut."""
    proc = _server(tmp_path, connection_limit=12, header_timeout=600, channel_timeout=600)
    socks: list[socket.socket] = []
    try:
        pkg = _big_package(tmp_path, proc)
        reader = _stalled_download(proc.port, "127.0.0.1")
        socks.append(reader)
        time.sleep(0.5)
        hoarders = [_stalled_download(proc.port, "127.0.0.2") for _ in range(14)]
        socks += hoarders
        time.sleep(1)  # every download started, blocked on its reader
        assert _get(proc.url + "/health", timeout=30) == 200
        head, body = _read_response(reader, pkg.stat().st_size)
        assert head.startswith(b"HTTP/1.1 200") and body == pkg.read_bytes()
        # some of the hoarding downloads ended short: cut
        assert any(len(_read_response(sock, pkg.stat().st_size)[1]) < pkg.stat().st_size
                   for sock in hoarders)
    finally:
        for sock in socks:
            sock.close()
        proc.stop()


@pytest.mark.parametrize("host, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),      # the same machine's /64
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),                 # IPv4-mapped: the IPv4 client
    ("fe80::1%eth0", "fe80::/64"),
    ("/run/vieter.sock", "/run/vieter.sock"),
])
def test_address_keys(host, key):
    assert address_key(host) == key


@pytest.mark.parametrize("served, limit, count, expected", [
    ([], 10, 1, []),
    # nobody holds more than half: nothing is cut
    ([("a", 1.0, "a1")] * 5 + [("b", 1.0, "b1")] * 5, 10, 1, []),
    # "a" holds 8 of 10: its quietest first, as many as asked
    ([("a", float(t), f"a{t}") for t in (5, 3, 9, 1, 7, 2, 8, 4)] + [("b", 0.0, "b0")],
     10, 2, ["a1", "a2"]),
    # never below half of the slots
    ([("a", float(t), f"a{t}") for t in range(7)], 10, 5, ["a0", "a1"]),
    # the heaviest address only, even when another also holds many
    ([("a", float(t), f"a{t}") for t in range(6)] + [("b", 0.5, "b")] * 4, 10, 1, ["a0"]),
])
def test_which_downloads_are_cut_for_room(served, limit, count, expected):
    assert hoarded(served, limit, count) == expected


class SteadyReader:
    """A download read at about 1.3 MB/s (64 KiB every 50 ms) until `finish` reads the
    rest at full speed: a client on a slow but honest link."""

    def __init__(self, port: int):
        self.sock = _stalled_download(port, "127.0.0.1")
        self.sock.settimeout(30)
        self.received = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                chunk = self.sock.recv(64 << 10)
            except OSError:
                return
            if not chunk:
                return
            self.received += chunk

    def finish(self, size: int) -> tuple[bytes, bytes]:
        self.stop.set()
        self.thread.join()
        head, _, body = bytes(self.received).partition(b"\r\n\r\n")
        rest = _read_response_body(self.sock, size - len(body))
        return head, body + rest


def _read_response_body(sock: socket.socket, size: int) -> bytes:
    """Up to `size` more bytes of a response, or what came before EOF."""
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        body += chunk
    return bytes(body)


def test_slow_readers_from_many_addresses_are_cut_to_make_room(tmp_path):
    """Downloads that a client does not read, each from an address of its own, fill every
    connection the server has left: none waits on its client and no address holds over
    half, so only their speed tells them apart. Measured over a window, they are cut to
    make room and a new client is served, while a download read at an honest speed keeps
    its connection to the last byte."""
    limit = 12
    proc = _server(tmp_path, connection_limit=limit, header_timeout=600, channel_timeout=600,
                   min_send_rate=4096)
    socks: list[socket.socket] = []
    steady = None
    try:
        pkg = _big_package(tmp_path, proc)
        size = pkg.stat().st_size
        steady = SteadyReader(proc.port)
        time.sleep(0.5)
        socks += [_stalled_download(proc.port, f"127.0.0.{10 + n}") for n in range(limit - 1)]
        time.sleep(1)  # every download started, the stalled ones blocked on their readers
        assert _get(proc.url + "/health", timeout=40) == 200
        head, body = steady.finish(size)
        assert head.startswith(b"HTTP/1.1 200") and body == pkg.read_bytes()
        short = 0
        for sock in socks:
            try:
                short += len(_read_response(sock, size)[1]) < size
            except ConnectionResetError:
                short += 1
        assert short >= 1
    finally:
        if steady is not None:
            steady.stop.set()
            steady.sock.close()
        for sock in socks:
            sock.close()
        proc.stop()


@pytest.mark.parametrize("steps, expected", [
    # (now, bytes sent so far, output waiting) ... -> the rate after the last step
    ([(0.0, 0, True)], None),                                   # a window has not passed
    ([(0.0, 0, True), (10.0, 5000, True)], 500.0),
    ([(0.0, 100, True), (4.0, 150, True), (12.5, 100 + 25_000, True)], 2000.0),
    ([(0.0, 0, True), (10.0, 0, True)], 0.0),                   # a reader that stopped
    # nothing left to send: not slow, and the next window starts afresh
    ([(0.0, 0, True), (10.0, 0, True), (11.0, 0, False)], None),
    ([(0.0, 0, True), (10.0, 0, True), (11.0, 0, False), (12.0, 0, True),
      (21.0, 0, True)], None),
    # each window is measured on its own: a fast start does not cover a stall
    ([(0.0, 0, True), (10.0, 10 << 20, True), (20.0, 10 << 20, True)], 0.0),
])
def test_send_rate_over_windows(steps, expected):
    rate = SendRate(window=10.0)
    for now, sent, pending in steps:
        rate.update(now, sent, pending)
    assert rate.rate == expected


@pytest.mark.parametrize("served, min_rate, count, expected", [
    ([], 4096, 1, []),
    # not yet measured, or fast enough: never cut
    ([(None, "new"), (5000.0, "ok")], 4096, 3, []),
    # the slowest first, as many as asked
    ([(100.0, "b"), (0.0, "a"), (9000.0, "fast"), (2000.0, "c")], 4096, 2, ["a", "b"]),
    ([(100.0, "b"), (0.0, "a"), (2000.0, "c")], 4096, 5, ["a", "b", "c"]),
    ([(0.0, "a")], 4096, 0, []),
    # min_send_rate 0: nobody is slow
    ([(0.0, "a")], 0, 1, []),
])
def test_which_slow_readers_are_cut_for_room(served, min_rate, count, expected):
    assert slow_readers(served, min_rate, count) == expected
