"""The waitress server: JSON error pages for waitress's own errors, and a clean stop."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any, Callable

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.utilities import Error

log = logging.getLogger(__name__)


class _JsonErrorTask(ErrorTask):
    """waitress answers some bad requests itself (oversized body, bad headers): use the envelope."""

    def execute(self) -> None:
        error = self.request.error
        text = error.body if isinstance(error, _Refused) else f"{error.reason}: {error.body}"
        body = json.dumps({"message": text.strip(": "),
                           "data": ""}, separators=(",", ":")).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Refused(Error):
    """A refusal decided from the headers: code and reason set per instance."""

    def __init__(self, code: int, body: str):
        super().__init__(body)
        self.code = code
        self.reason = HTTPStatus(code).phrase


def given_key(headers: dict[str, str]) -> str:
    """The key a request carries: X-Api-Key, or Authorization: Bearer (WSGI-style names)."""
    given = headers.get("X_API_KEY", "")
    auth = headers.get("AUTHORIZATION", "")
    if not given and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    return given


class _BodyGuardParser(HTTPRequestParser):
    """Refuses a request body before a byte of it is read (or buffered to disk) when its
    headers already say it may not be sent: no known key, over the route's limit. A
    client without a key cannot fill the disk or memory with uploads. `refusal(path,
    key, length)` (None for a chunked body) is set by HttpServer."""

    refusal: Callable[[str, str, int | None], tuple[int, str] | None] | None = None

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        has_body = self.body_rcv is not None and (self.chunked or self.content_length > 0)
        decide = type(self).refusal
        if not has_body or decide is None:
            return
        refused = decide(self.path, given_key(self.headers),
                         None if self.chunked else self.content_length)
        if refused is not None:
            self.error = _Refused(*refused)
            self.body_rcv = None  # complete now: the body is never read
            self.content_length = 0
            # no "100 Continue" for a refused body (waitress would then wait for it)
            self.expect_continue = False


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask
    parser_class = _BodyGuardParser


class HttpServer:
    """One waitress listener; run() blocks in the calling thread until stop()."""

    def __init__(self, app: Callable[..., Any], host: str, port: int, threads: int,
                 max_body: int,
                 refusal: Callable[[str, str, int | None], tuple[int, str] | None] | None = None):
        self._server = create_server(app, host=host, port=port, threads=threads,
                                     max_request_body_size=max_body, ident="vieter-lite",
                                     clear_untrusted_proxy_headers=True)
        parser = type("_Parser", (_BodyGuardParser,), {"refusal": staticmethod(refusal)}
                      if refusal else {})
        self._server.channel_class = type("_GuardedChannel", (_Channel,), {"parser_class": parser})
        self._stopping = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def run(self) -> None:
        try:
            self._server.asyncore.loop(0.5, map=self._server._map)
        except OSError:
            if not self._stopping:
                raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running requests finish (up to timeout), close connections."""
        self._stopping = True
        self._server.close()
        self._server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)
        for channel in list(self._server._map.values()):
            channel.handle_close()
