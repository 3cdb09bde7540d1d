"""The waitress server: JSON error pages for waitress's own errors, and a clean stop."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

log = logging.getLogger(__name__)


class _JsonErrorTask(ErrorTask):
    """waitress answers some bad requests itself (oversized body, bad headers): use the envelope."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"message": f"{error.reason}: {error.body}".strip(": "),
                           "data": ""}, separators=(",", ":")).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask


class HttpServer:
    """One waitress listener; run() blocks in the calling thread until stop()."""

    def __init__(self, app: Callable[..., Any], host: str, port: int, threads: int,
                 max_body: int):
        self._server = create_server(app, host=host, port=port, threads=threads,
                                     max_request_body_size=max_body, ident="vieter-lite",
                                     clear_untrusted_proxy_headers=True)
        self._server.channel_class = _Channel
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
