"""Real receivers of notifications for the tests and the bench: a loopback HTTP server
that answers webhooks from a script (a status per request, or hang: keep the request
unanswered until released), and an SMTP server (aiosmtpd) keeping each message."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"


@dataclass
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]    # lower-case names
    body: bytes
    at: float = field(default_factory=time.monotonic)
    answered: bool = False


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        got = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                       self.rfile.read(length))
        answer = self.server.arrived(got)
        if answer == HANG:
            self.server.released.wait(120)
            self.close_connection = True
            return           # hang up without an answer
        body = f"answer {answer} to request {len(self.server.requests)}".encode()
        self.send_response(int(answer))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        got.answered = True


class WebhookReceiver(ThreadingHTTPServer):
    """Answers the n-th request with script[n] (later ones with `then`)."""

    daemon_threads = True

    def __init__(self, script: list[int | str] | None = None, then: int | str = 200):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script or [])
        self.then = then
        self.requests: list[Received] = []
        self.changed = threading.Condition()
        self.released = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def arrived(self, got: Received) -> int | str:
        with self.changed:
            answer = self.script[len(self.requests)] if len(self.requests) < len(self.script) \
                else self.then
            self.requests.append(got)
            self.changed.notify_all()
        return answer

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The first `count` requests, once they arrived (AssertionError after timeout)."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.requests) >= count, timeout), \
                f"{len(self.requests)} of {count} requests arrived"
            return self.requests[:count]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class SmtpReceiver:
    """aiosmtpd on a loopback port; keeps (mail_from, rcpt_tos, message bytes)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from conftest import free_port

        self.messages: list[tuple[str, list[str], bytes]] = []
        self.changed = threading.Condition()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.changed:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  bytes(envelope.original_content or envelope.content)))
            self.changed.notify_all()
        return "250 OK queued"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[str, list[str], bytes]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.messages) >= count, timeout), \
                f"{len(self.messages)} of {count} messages arrived"
            return self.messages[:count]

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()
