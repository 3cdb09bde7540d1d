"""A request body from a client without a valid key is refused before it is read."""

from __future__ import annotations

import json
import socket
import time

import pytest

from conftest import API_KEY

SIZE = 300 << 20  # announced, never sent in full


def _disk_bytes(root) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _response(sock: socket.socket) -> tuple[int, dict]:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("key_header, framing", [
    ("", f"Content-Length: {SIZE}"),
    ("X-Api-Key: wrong-key\r\n", f"Content-Length: {SIZE}"),
    ("Authorization: Bearer vl-not-a-token\r\n", f"Content-Length: {SIZE}"),
    ("", "Transfer-Encoding: chunked"),
])
def test_an_upload_without_a_valid_key_is_refused_before_its_body(server, key_header,
                                                                  framing):
    before = _disk_bytes(server.data_dir)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"POST /r/publish HTTP/1.1\r\nHost: x\r\n{key_header}{framing}\r\n\r\n"
                     .encode())
        # send 8 MiB of the body; the answer comes without waiting for the rest
        sock.settimeout(5)
        try:
            for _ in range(8):
                sock.sendall(b"\0" * (1 << 20))
        except OSError:
            pass  # the server closed the connection: fine
        status, body = _response(sock)
    assert status == 401
    assert body == {"message": "Unauthorized.", "data": ""}
    time.sleep(0.5)
    assert _disk_bytes(server.data_dir) - before < (1 << 20)


def test_the_api_key_still_sends_a_body(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"POST /r/publish HTTP/1.1\r\nHost: x\r\nX-Api-Key: {API_KEY}\r\n"
                     "Content-Length: 5\r\n\r\nhello".encode())
        status, body = _response(sock)
    assert status == 400  # read, and refused as not a package
    assert "Unauthorized" not in body["message"]


def _refused_at_headers(server, head: str) -> tuple[int, dict]:
    """Send only a request's headers and read the answer (the body never follows)."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode())
        return _response(sock)


@pytest.mark.parametrize("path, length, status", [
    ("/api/v1/targets", (64 << 10) + 1, 413),
    ("//api/v1/targets/", 100 << 20, 413),
    ("/api/v1/builds/1/log", (1 << 20) + 1, 413),
    ("/api/v1/jobs/poll", 100 << 20, 413),
])
def test_a_body_over_the_routes_limit_is_refused_before_it_is_read(server, path, length,
                                                                   status):
    code, body = _refused_at_headers(
        server, f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {API_KEY}\r\n"
                f"Content-Length: {length}\r\n\r\n")
    assert code == status
    assert "limit" in body["message"] and body["data"] == ""


def test_a_chunked_body_on_a_small_route_needs_a_length(server):
    code, body = _refused_at_headers(
        server, f"POST /api/v1/targets HTTP/1.1\r\nHost: x\r\nX-Api-Key: {API_KEY}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n")
    assert (code, body["message"]) == (411, "Content-Length is required.")


def test_a_body_within_the_limit_reaches_the_route(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"POST /api/v1/targets?kind=git&repo=r&url=https://e.com/a.git HTTP/1.1\r\n"
                     f"Host: x\r\nX-Api-Key: {API_KEY}\r\nContent-Length: 3\r\n\r\nabc".encode())
        status, body = _response(sock)
    assert status == 200 and isinstance(body["data"], int)


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_curl_upload_without_a_key_is_answered_at_once(server, tmp_path, method):
    """curl -T sends `Expect: 100-continue`: the refusal must not wait for the body."""
    import subprocess

    upload = tmp_path / "x.pkg.tar.zst"
    upload.write_bytes(b"\0" * 1000)
    done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
                           "-T", str(upload), "-H", "X-Api-Key: wrong", "-H",
                           "Expect: 100-continue", "--max-time", "20",
                           f"{server.url}/r/publish"], capture_output=True, text=True)
    assert done.stdout == "401", done.stderr
