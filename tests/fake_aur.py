"""A small fake of the AUR RPC v5 (type=search, type=info) on a loopback port, for tests."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PACKAGES: list[dict[str, Any]] = [
    {"ID": 1, "Name": "yay", "PackageBaseID": 1, "PackageBase": "yay", "Version": "12.3.5-1",
     "Description": "Yet another yogurt. Pacman wrapper and AUR helper written in go.",
     "URL": "https://github.com/Jguer/yay", "NumVotes": 2000, "Popularity": 30.1,
     "OutOfDate": None, "Maintainer": "jguer", "FirstSubmitted": 1475688004,
     "LastModified": 1700000000, "URLPath": "/cgit/aur.git/snapshot/yay.tar.gz"},
    {"ID": 2, "Name": "yay-bin", "PackageBaseID": 2, "PackageBase": "yay-bin",
     "Version": "12.3.5-1", "Description": "Yet another yogurt (binary release).",
     "URL": "https://github.com/Jguer/yay", "NumVotes": 500, "Popularity": 10.0,
     "OutOfDate": None, "Maintainer": "jguer", "FirstSubmitted": 1475688004,
     "LastModified": 1700000000, "URLPath": "/cgit/aur.git/snapshot/yay-bin.tar.gz"},
    {"ID": 3, "Name": "python-foo-docs", "PackageBaseID": 3, "PackageBase": "python-foo",
     "Version": "1:2.0-3", "Description": None, "URL": None, "NumVotes": 0,
     "Popularity": 0, "OutOfDate": 1700000000, "Maintainer": None,
     "FirstSubmitted": 1600000000, "LastModified": 1700000000,
     "URLPath": "/cgit/aur.git/snapshot/python-foo.tar.gz"},
]


class _Handler(BaseHTTPRequestHandler):
    server: FakeAur

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, message: str, status: int = 200) -> None:
        self._send(status, {"version": 5, "type": "error", "resultcount": 0, "results": [],
                            "error": message})

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        self.server.requests.append((url.path, query))
        if url.path != "/rpc":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if query.get("v") != ["5"]:
            return self._error("Invalid version specified.", 400)
        kind = (query.get("type") or [""])[0]
        if kind == "search":
            term = (query.get("arg") or [""])[0]
            if len(term) < 2:
                return self._error("Query arg too small.")
            found = [p for p in self.server.packages
                     if term in p["Name"] or term in (p["Description"] or "")]
        elif kind == "info":
            names = set(query.get("arg[]", []))
            found = [p for p in self.server.packages if p["Name"] in names]
        else:
            return self._error("Incorrect request type specified.")
        self._send(200, {"version": 5, "type": "multiinfo" if kind == "info" else kind,
                         "resultcount": len(found), "results": found})


class FakeAur(ThreadingHTTPServer):
    """serve() in a thread; .url is its base address; .requests what it was asked."""

    daemon_threads = True

    def __init__(self, packages: list[dict[str, Any]] | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.packages = PACKAGES if packages is None else packages
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeAur:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
