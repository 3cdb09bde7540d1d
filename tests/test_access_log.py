"""The access log: a line per request, auth refusals as warnings, no forged lines."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

import pytest

from conftest import ServerProcess
from vieter_lite.web.access_log import escape


@pytest.mark.parametrize("text, logged", [
    ("/r/x86_64/r.db", "/r/x86_64/r.db"),
    ("/a\nFORGED", "/a\\x0aFORGED"),
    ("/a\r\x1b[31m\x00\x7f\x85", "/a\\x0d\\x1b[31m\\x00\\x7f\\x85"),
    ("/a\\x0aFORGED", "/a\\x5cx0aFORGED"),
    ("/ünï", "/ünï"),
])
def test_escape(text, logged):
    assert escape(text) == logged
    assert "\n" not in escape(text)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


class DefaultLevelServer(ServerProcess):
    """A server with the default log level (no VIETER_LOG_LEVEL)."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("VIETER_LOG_LEVEL")
        return env


def test_a_real_server_logs_each_request_and_no_forged_line(tmp_path):
    proc = DefaultLevelServer(tmp_path / "data").start()
    try:
        assert _get(proc.url + "/health") == 200
        assert _get(proc.url + "/api/v1/targets") == 401
        with socket.create_connection(("127.0.0.1", proc.port)) as sock:
            sock.sendall(b"GET /r/x86_64/a%0a2026-01-01%2000:00:00,000%20WARNING%20FORGED"
                         b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while sock.recv(65536):
                pass
    finally:
        proc.stop()
    log = proc.log()
    assert re.search(r"INFO vieter_lite.access: GET /health 200 \d+ [\d.]+ms 127\.0\.0\.1", log)
    assert re.search(r"WARNING vieter_lite.access: GET /api/v1/targets 401 .* 127\.0\.0\.1", log)
    assert "GET /r/x86_64/a\\x0a2026-01-01 00:00:00,000 WARNING FORGED 404" in log
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())
    assert re.search(r"INFO vieter_lite.supervisor: vieter-lite \S+ serving on "
                     r"http://127\.0\.0\.1:\d+, data in .*, repos: none yet", log)
