"""One test client, two transports: the same requests in-process (webtest around the WSGI
app) and over a socket to a real server process. Used by the v1, repository and v2 tests."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any, NamedTuple

from conftest import API_KEY, ServerProcess

KEY = {"X-Api-Key": API_KEY}


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class InProcessClient:
    """webtest around the WSGI app; raw variants tamper with the WSGI environ."""

    mode = "inprocess"

    def __init__(self, webapp, services, default_headers: dict[str, str] | None = None):
        self.app, self.services = webapp, services
        self.default_headers = default_headers or {}
        self.data_dir = Path(services.config.data_dir)
        self.pkg_dir = Path(services.config.pkg_dir)

    @staticmethod
    def _response(resp) -> Response:
        return Response(resp.status_int, {k.lower(): v for k, v in resp.headerlist}, resp.body)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        params: dict[str, Any] = {"method": method, "expect_errors": True,
                                  "headers": self.default_headers if headers is None
                                  else headers}
        if body is not None:
            params["body"] = body
        return self._response(self.app.request(path, **params))

    def _raw(self, path: str, body: bytes, content_length: str | None) -> Response:
        import webtest
        req = webtest.TestRequest.blank(path, method="POST", headers=KEY)
        req.body = body
        if content_length is None:
            del req.environ["CONTENT_LENGTH"]
        else:
            req.environ["CONTENT_LENGTH"] = content_length
        return self._response(self.app.do_request(req, status="*"))

    def post_without_length(self, path: str, body: bytes) -> Response:
        return self._raw(path, body, None)

    def oversized(self, method: str, path: str, length: int,
                  headers: dict[str, str]) -> Response:
        """A body of `length` bytes (webtest hands the app all of it)."""
        return self.request(method, path, b"x" * length, headers)

    def post_truncated(self, path: str, body: bytes, announced: int) -> Response | None:
        return self._raw(path, body, str(announced))


class ServerClient:
    """http.client against a ServerProcess; raw variants write to the socket themselves."""

    mode = "server"

    def __init__(self, proc: ServerProcess, default_headers: dict[str, str] | None = None):
        self.proc = proc
        self.default_headers = default_headers or {}
        self.data_dir = proc.data_dir
        self.pkg_dir = proc.data_dir / "pkgs"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.proc.port, timeout=60)
        try:
            conn.request(method, path, body=body,
                         headers=self.default_headers if headers is None else headers)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                            resp.read())
        finally:
            conn.close()

    def _send_raw(self, data: bytes, wait_for_answer: bool = True) -> Response | None:
        with socket.create_connection(("127.0.0.1", self.proc.port), timeout=30) as sock:
            sock.sendall(data)
            if not wait_for_answer:
                return None
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return Response(int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()},
                        body)

    @staticmethod
    def _head(path: str, extra: str = "") -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nX-Api-Key: {API_KEY}\r\n"
                f"Connection: close\r\n{extra}\r\n").encode()

    def post_without_length(self, path: str, body: bytes) -> Response:
        resp = self._send_raw(self._head(path) + body)
        assert resp is not None
        return resp

    def oversized(self, method: str, path: str, length: int,
                  headers: dict[str, str]) -> Response:
        """Announce a body of `length` bytes and wait for the answer before sending any
        (a server that refuses it from the headers answers at once)."""
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        resp = self._send_raw(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{lines}"
                              f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
                              .encode())
        assert resp is not None
        return resp

    def post_truncated(self, path: str, body: bytes, announced: int) -> Response | None:
        """Announce `announced` bytes, send `body`, hang up: no answer is possible."""
        return self._send_raw(self._head(path, f"Content-Length: {announced}\r\n") + body,
                              wait_for_answer=False)


def client_for(request: Any, services_fixture: str, server_fixture: str) -> Any:
    """The client a fixture parametrised over ["inprocess", "server"] yields: webtest
    around the app of `services_fixture`, or http.client against `server_fixture`."""
    if request.param == "inprocess":
        import webtest

        from vieter_lite.web.app import make_app

        services = request.getfixturevalue(services_fixture)
        return InProcessClient(webtest.TestApp(make_app(services)), services, KEY)
    return ServerClient(request.getfixturevalue(server_fixture), KEY)
