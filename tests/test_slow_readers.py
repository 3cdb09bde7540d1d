"""Clients that request a large package and never read it hold no worker thread."""

from __future__ import annotations

import os
import socket
import time
import urllib.request

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package

READERS = 6        # three times the server's worker threads
PACKAGE_MB = 40    # well past waitress's 16 MiB out-buffer high watermark


def test_slow_readers_of_a_large_package_do_not_block_the_server(tmp_path):
    proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_THREADS": "2"}).start()
    try:
        pkg = make_synthetic_package(
            tmp_path / "big.pkg.tar.gz",
            {"pkgname": "big", "pkgver": "1.0-1", "arch": "x86_64"},
            {"usr/share/big/blob": os.urandom(PACKAGE_MB << 20)}, compression="gz")
        request = urllib.request.Request(f"{proc.url}/r/publish", data=pkg.read_bytes(),
                                         headers={"X-Api-Key": API_KEY}, method="POST")
        urllib.request.urlopen(request, timeout=60).close()
        stuck = []
        for _ in range(READERS):
            sock = socket.create_connection(("127.0.0.1", proc.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /r/x86_64/big-1.0-1-x86_64.pkg.tar.gz HTTP/1.1\r\n"
                         b"Host: x\r\n\r\n")
            stuck.append(sock)
        time.sleep(2)  # let every request reach a worker
        for path in ("/health", "/r/x86_64/r.db"):
            with urllib.request.urlopen(proc.url + path, timeout=20) as resp:
                assert resp.status == 200
        # the stuck downloads are still served correctly once read
        first = stuck[0]
        first.settimeout(20)
        head = b""
        while b"\r\n\r\n" not in head:
            head += first.recv(65536)
        assert head.startswith(b"HTTP/1.1 200")
        assert f"Content-Length: {pkg.stat().st_size}".encode() in head
        for sock in stuck:
            sock.close()
    finally:
        proc.stop()
